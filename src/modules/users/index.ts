// /api/users: search, profile, self-edit.

import { Elysia } from "elysia";
import type { Deps } from "../../deps.ts";
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
    .put("/:id", ({ params, body, userId }) => users.update(params.id, userId, body), {
      auth: true,
      params: UserIdParams,
      body: UpdateUser,
      parse: "json",
      response: { 200: UserView, ...ErrorResponse },
    });
}
