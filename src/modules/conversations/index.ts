// /api/conversations: create, list, read, update, delete, and participants.

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";
import { ErrorResponse } from "../../plugins/openapi.ts";
import { authGuard } from "../auth/guard.ts";
import { MEMBER_PAGE_DEFAULT, MemberPageQuery } from "./member-page.ts";
import {
  AddParticipant,
  ConversationList,
  ConversationParams,
  ConversationView,
  CreateConversation,
  ListQuery,
  ParticipantList,
  ParticipantParams,
  ParticipantView,
  Role,
  UpdateConversation,
} from "./model.ts";

export function conversationsController(deps: Deps) {
  const { conversations } = deps;
  return new Elysia({ prefix: "/api/conversations", tags: ["conversations"] })
    .use(authGuard(deps))
    .post(
      "",
      async ({ body, userId, set }) => {
        const { created, conversation } = await conversations.create(body, userId);
        set.status = created ? 201 : 200;
        return conversation;
      },
      {
        auth: true,
        body: CreateConversation,
        parse: "json",
        response: { 200: ConversationView, 201: ConversationView, ...ErrorResponse },
      },
    )
    .get(
      "",
      ({ query, userId }) => conversations.list(userId, query.limit ?? 50, query.cursor, query.order),
      {
        auth: true,
        query: ListQuery,
        response: { 200: ConversationList, ...ErrorResponse },
      },
    )
    .get("/:id", ({ params, userId }) => conversations.get(params.id, userId), {
      auth: true,
      params: ConversationParams,
      response: { 200: ConversationView, ...ErrorResponse },
    })
    .put("/:id", ({ params, body, userId }) => conversations.update(params.id, userId, body), {
      auth: true,
      params: ConversationParams,
      body: UpdateConversation,
      parse: "json",
      response: { 200: ConversationView, ...ErrorResponse },
    })
    .delete(
      "/:id",
      async ({ params, userId, set }) => {
        await conversations.remove(params.id, userId);
        set.status = 204;
      },
      { auth: true, params: ConversationParams },
    )
    .get(
      "/:id/participants",
      ({ params, query, userId }) =>
        conversations.participants(params.id, userId, query.limit ?? MEMBER_PAGE_DEFAULT, query.cursor),
      {
        auth: true,
        params: ConversationParams,
        query: MemberPageQuery,
        response: { 200: ParticipantList, ...ErrorResponse },
      },
    )
    .post(
      "/:id/participants",
      async ({ params, body, userId, set }) => {
        set.status = 201;
        return conversations.addParticipant(params.id, userId, body);
      },
      {
        auth: true,
        params: ConversationParams,
        body: AddParticipant,
        parse: "json",
        response: { 201: ParticipantView, ...ErrorResponse },
      },
    )
    .put(
      "/:id/participants/:user_id",
      ({ params, body, userId }) => conversations.setRole(params.id, userId, params.user_id, body.role),
      {
        auth: true,
        params: ParticipantParams,
        body: t.Object({ role: Role }),
        parse: "json",
        response: { 200: ParticipantView, ...ErrorResponse },
      },
    )
    .delete(
      "/:id/participants/:user_id",
      async ({ params, userId, set }) => {
        await conversations.removeParticipant(params.id, userId, params.user_id);
        set.status = 204;
      },
      { auth: true, params: ParticipantParams },
    );
}
