// /api/users: search, profile, self-edit.

import { Elysia } from "elysia";
import type { Deps } from "../../deps.ts";
import { errorText } from "../../lib/errors.ts";
import { ErrorResponse } from "../../plugins/openapi.ts";
import { authGuard } from "../auth/guard.ts";
import { ListUsersQuery, UpdateUser, UserIdParams, UserList, UserView } from "./model.ts";

export function usersController(deps: Deps) {
  const { users } = deps;
  return new Elysia({ prefix: "/api/users", tags: ["users"] })
    .use(authGuard(deps))
    .get("/", ({ query, userId }) => users.list(query, userId), {
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
        // Peers see a status set here as one set through a socket. Written already: a peer missing this
        // frame (a node without Redis for a moment) reads it at its next fetch.
        if (body.status !== undefined)
          await deps.gateway.statusWritten(user.id, user.status, user.last_seen).catch((err: unknown) => {
            deps.logger.warn(
              { err: errorText(err), user_id: user.id },
              "presence: could not tell the status",
            );
          });
        return user;
      },
      {
        auth: true,
        params: UserIdParams,
        body: UpdateUser,
        parse: "json",
        response: { 200: UserView, ...ErrorResponse },
      },
    );
}
