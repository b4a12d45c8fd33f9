// Users: look up, search by prefix, and let a user edit their own profile.

import type { Clock } from "../../lib/clock.ts";
import { AppError } from "../../lib/errors.ts";
import { nameKey, visibleName } from "../../lib/text.ts";
import { DuplicateError, type Store, type UserPatch } from "../../store/types.ts";
import { type ListUsersQuery, toUserView, type UpdateUser, type UserView } from "./model.ts";

export type UsersService = ReturnType<typeof createUsersService>;

const encodeCursor = (username: string) => Buffer.from(username).toString("base64url");
function decodeCursor(cursor: string): string {
  const username = Buffer.from(cursor, "base64url").toString("utf8");
  if (!/^[a-z0-9_.]{3,32}$/.test(username)) {
    throw new AppError("validation_failed", "cursor: not a cursor from this API", {
      details: { field: "cursor" },
    });
  }
  return username;
}

export function createUsersService({ store, clock }: { store: Store; clock: Clock }) {
  return {
    async get(id: string, viewerId: string): Promise<UserView> {
      const user = await store.users.byId(id);
      if (!user) throw new AppError("not_found", "user not found");
      return toUserView(user, user.id === viewerId);
    },

    async list(
      query: ListUsersQuery,
      viewerId: string,
    ): Promise<{ items: UserView[]; next_cursor: string | null }> {
      const limit = query.limit ?? 20;
      const rows = await store.users.list({
        prefix: nameKey(query.q?.trim() ?? ""),
        afterUsername: query.cursor ? decodeCursor(query.cursor) : "",
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map((u) => toUserView(u, u.id === viewerId)),
        next_cursor: rows.length > limit && last ? encodeCursor(last.username) : null,
      };
    },

    async update(id: string, viewerId: string, input: UpdateUser): Promise<UserView> {
      if (id !== viewerId) {
        if (!(await store.users.byId(id))) throw new AppError("not_found", "user not found");
        throw new AppError("forbidden", "you can only edit your own profile");
      }
      const patch: UserPatch = { updated_at: clock.now() };
      if (input.display_name !== undefined)
        patch.display_name = visibleName(input.display_name, "display_name");
      if (input.username !== undefined) patch.username = input.username.toLowerCase();
      // A choice: what everyone sees changes only if the user is connected (the controller asks the gateway).
      if (input.status !== undefined) patch.chosen_status = input.status;
      try {
        const user = await store.users.update(id, patch);
        if (!user) throw new AppError("not_found", "user not found");
        return toUserView(user, true);
      } catch (err) {
        if (err instanceof DuplicateError) throw new AppError("username_taken", "username is taken");
        throw err;
      }
    },
  };
}
