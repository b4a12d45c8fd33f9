// Users: look up, search by prefix, and let a user edit their own profile.

import type { Clock } from "../../lib/clock.ts";
import { AppError } from "../../lib/errors.ts";
import { nameKey, visibleName } from "../../lib/text.ts";
import { DuplicateError, type Store, type UserPatch } from "../../store/types.ts";
import {
  type ListUsersQuery,
  type OwnUserView,
  toOwnUserView,
  toUserView,
  type UpdateUser,
  type UserView,
  type Viewer,
} from "./model.ts";

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
  /** How the viewer sees each of these users: one store query for a whole page. */
  async function viewers(viewerId: string, ids: string[]): Promise<Map<string, Viewer>> {
    const others = ids.filter((id) => id !== viewerId);
    const peers = new Set(others.length > 0 ? await store.conversations.peersAmong(viewerId, others) : []);
    return new Map(ids.map((id) => [id, id === viewerId ? "self" : peers.has(id) ? "peer" : "other"]));
  }

  return {
    async get(id: string, viewerId: string): Promise<UserView> {
      const user = await store.users.byId(id);
      if (!user) throw new AppError("not_found", "user not found");
      return toUserView(user, (await viewers(viewerId, [user.id])).get(user.id) ?? "other");
    },

    /** The caller themself (/api/auth/me). */
    async own(id: string): Promise<OwnUserView> {
      const user = await store.users.byId(id);
      if (!user) throw new AppError("not_found", "user not found");
      return toOwnUserView(user);
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
      const seenAs = await viewers(
        viewerId,
        page.map((u) => u.id),
      );
      return {
        items: page.map((u) => toUserView(u, seenAs.get(u.id) ?? "other")),
        next_cursor: rows.length > limit && last ? encodeCursor(last.username) : null,
      };
    },

    async update(id: string, viewerId: string, input: UpdateUser): Promise<OwnUserView> {
      if (id !== viewerId) {
        if (!(await store.users.byId(id))) throw new AppError("not_found", "user not found");
        throw new AppError("forbidden", "you can only edit your own profile");
      }
      const patch: UserPatch = {};
      if (input.display_name !== undefined)
        patch.display_name = visibleName(input.display_name, "display_name");
      if (input.username !== undefined) patch.username = input.username.toLowerCase();
      // A profile change moves updated_at; a status chosen does not (presence: see UserPatch).
      if (patch.display_name !== undefined || patch.username !== undefined) patch.updated_at = clock.now();
      // A choice: what everyone sees changes only if the user is connected (the controller asks the gateway).
      if (input.status !== undefined) patch.chosen_status = input.status;
      try {
        const user = await store.users.update(id, patch);
        if (!user) throw new AppError("not_found", "user not found");
        return toOwnUserView(user);
      } catch (err) {
        if (err instanceof DuplicateError) throw new AppError("username_taken", "username is taken");
        throw err;
      }
    },
  };
}
