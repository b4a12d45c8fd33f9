// Message routes: history, send, catch-up events, read state and search under a conversation;
// edit, delete, reactions and receipts by message id.

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";
import { ErrorResponse } from "../../plugins/openapi.ts";
import { authGuard } from "../auth/guard.ts";
import { MEMBER_PAGE_DEFAULT, MemberPageQuery } from "../conversations/member-page.ts";
import { ConversationParams } from "../conversations/model.ts";
import {
  EditMessage,
  EventPage,
  EventsQuery,
  MessagePage,
  MessageParams,
  MessageView,
  PageQuery,
  ReactionBody,
  ReactionParams,
  ReadBody,
  Receipts,
  SearchQuery,
  SendMessage,
} from "./model.ts";

export function messagesController(deps: Deps) {
  const { messages } = deps;
  return new Elysia({ tags: ["messages"] })
    .use(authGuard(deps))
    .get(
      "/api/conversations/:id/messages",
      ({ params, query, userId }) => messages.page(params.id, userId, query),
      {
        auth: true,
        params: ConversationParams,
        query: PageQuery,
        response: { 200: MessagePage, ...ErrorResponse },
      },
    )
    .post(
      "/api/conversations/:id/messages",
      async ({ params, body, userId, set }) => {
        const { created, message } = await messages.send(params.id, userId, body);
        set.status = created ? 201 : 200;
        return message;
      },
      {
        auth: true,
        params: ConversationParams,
        body: SendMessage,
        parse: "json",
        response: { 200: MessageView, 201: MessageView, ...ErrorResponse },
      },
    )
    .get(
      "/api/conversations/:id/messages/search",
      ({ params, query, userId }) => messages.search(params.id, userId, query.q, query.limit ?? 20),
      {
        auth: true,
        params: ConversationParams,
        query: SearchQuery,
        response: { 200: t.Object({ items: t.Array(MessageView) }), ...ErrorResponse },
      },
    )
    .get(
      "/api/conversations/:id/events",
      ({ params, query, userId }) => messages.events(params.id, userId, query.after ?? 0, query.limit ?? 200),
      {
        auth: true,
        params: ConversationParams,
        query: EventsQuery,
        response: { 200: EventPage, ...ErrorResponse },
      },
    )
    .post(
      "/api/conversations/:id/read",
      ({ params, body, userId }) => messages.markRead(params.id, userId, body.seq),
      {
        auth: true,
        params: ConversationParams,
        body: ReadBody,
        parse: "json",
        response: { 200: t.Object({ last_read_seq: t.Integer() }), ...ErrorResponse },
      },
    )
    .put("/api/messages/:id", ({ params, body, userId }) => messages.edit(params.id, userId, body.content), {
      auth: true,
      params: MessageParams,
      body: EditMessage,
      parse: "json",
      response: { 200: MessageView, ...ErrorResponse },
    })
    .delete(
      "/api/messages/:id",
      async ({ params, userId, set }) => {
        await messages.remove(params.id, userId);
        set.status = 204;
      },
      { auth: true, params: MessageParams },
    )
    .post(
      "/api/messages/:id/reactions",
      async ({ params, body, userId, set }) => {
        const { changed } = await messages.react(params.id, userId, body.emoji, "add");
        set.status = changed ? 201 : 200;
        return { emoji: body.emoji, user_id: userId };
      },
      { auth: true, params: MessageParams, body: ReactionBody, parse: "json" },
    )
    .delete(
      "/api/messages/:id/reactions/:emoji",
      async ({ params, userId, set }) => {
        // The router has decoded the path segment once: decoding it again would turn a reaction "%41" into "A".
        await messages.react(params.id, userId, params.emoji, "remove");
        set.status = 204;
      },
      { auth: true, params: ReactionParams },
    )
    .get(
      "/api/messages/:id/receipts",
      ({ params, query, userId }) =>
        messages.receipts(params.id, userId, {
          limit: query.limit ?? MEMBER_PAGE_DEFAULT,
          cursor: query.cursor,
        }),
      {
        auth: true,
        params: MessageParams,
        query: MemberPageQuery,
        response: { 200: Receipts, ...ErrorResponse },
      },
    );
}
