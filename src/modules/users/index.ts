// /api/users: search, profile, self-edit.

import { Elysia } from "elysia";
import type { Deps } from "../../deps.ts";
import { errorText } from "../../lib/errors.ts";
import { ErrorResponse } from "../../plugins/openapi.ts";
import { authGuard } from "../auth/guard.ts";
import {
  ListUsersQuery,
  OwnUserView,
  toOwnUserView,
  UpdateUser,
  UserIdParams,
  UserList,
  UserView,
} from "./model.ts";

export function usersController(deps: Deps) {
  const { users } = deps;
  return new Elysia({ prefix: "/api/users", tags: ["users"] })
    .use(authGuard(deps))
    .get("", ({ query, userId }) => users.list(query, userId), {
      auth: true,
      query: ListUsersQuery,
      response: { 200: UserList, ...ErrorResponse },
    })
    .get("/:id", ({ params, userId }) => users.get(params.id, userId), {
      auth: true,
      params: UserIdParams,
      response: { 200: UserView, ...ErrorResponse },
    })
    .put(
      "/:id",
      async ({ params, body, userId }) => {
        const user = await users.update(params.id, userId, body);
        if (body.status === undefined) return user;
        // The choice is written: shown now, as a presence_update's is, if the user is connected; else when
        // they next connect. A failure here leaves it for then.
        const shown = await deps.gateway.statusChosen(user.id).catch((err: unknown) => {
          deps.logger.warn({ err: errorText(err), user_id: user.id }, "presence: could not show the status");
          return null;
        });
        return shown ? toOwnUserView(shown) : user;
      },
      {
        auth: true,
        params: UserIdParams,
        body: UpdateUser,
        parse: "json",
        response: { 200: OwnUserView, ...ErrorResponse },
      },
    );
}
