// The WebSocket protocol: client frames (validated by compiled TypeBox checks), server frames, close
// codes and subprotocol names. This file is the contract the gateway and the SDK share.

import { type Static, Type as T } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";

export const SUBPROTOCOL_MSGPACK = "parley.msgpack";
export const SUBPROTOCOL_JSON = "parley.json";
/** Browsers cannot set headers on a WebSocket: the token rides as a subprotocol entry `bearer.<jwt>`. */
export const BEARER_PREFIX = "bearer.";

export type Encoding = "msgpack" | "json";

/** 4000-4499: reconnect with backoff. 4500-4999: terminal, do not reconnect as is. */
export const CLOSE = {
  restart: 4000,
  slowConsumer: 4001,
  rateLimited: 4002,
  idle: 4003,
  unauthorized: 4500,
  sessionRevoked: 4501,
  forbidden: 4503,
  tooLarge: 1009,
} as const;

const Id = T.String({ minLength: 1, maxLength: 64 });
const Ref = T.Optional(T.Union([T.String({ maxLength: 64 }), T.Integer()]));
const Seq = T.Integer({ minimum: 0 });
/** Binary payloads: bytes in msgpack, base64url text in JSON. */
const Binary = T.Union([T.Uint8Array({ maxByteLength: 16 * 1024 }), T.String({ maxLength: 22 * 1024 })]);

const Attachment = T.Object({
  file_id: Id,
  file_name: T.String({ minLength: 1, maxLength: 255 }),
  file_size: T.Integer({ minimum: 0 }),
  mime_type: T.String({ minLength: 1, maxLength: 255 }),
});

export const ClientFrame = T.Union([
  T.Object({ type: T.Literal("ping"), ref: Ref }),
  T.Object({
    type: T.Literal("message"),
    ref: Ref,
    conversation_id: Id,
    client_msg_id: T.String({ minLength: 1, maxLength: 64 }),
    content: T.Optional(T.String()),
    message_type: T.Optional(T.Union([T.Literal("text"), T.Literal("image"), T.Literal("file")])),
    reply_to: T.Optional(Id),
    attachments: T.Optional(T.Array(Attachment, { maxItems: 20 })),
  }),
  T.Object({ type: T.Literal("typing_start"), ref: Ref, conversation_id: Id }),
  T.Object({ type: T.Literal("typing_stop"), ref: Ref, conversation_id: Id }),
  T.Object({ type: T.Literal("message_ack"), ref: Ref, conversation_id: Id, seq: Seq }),
  T.Object({ type: T.Literal("message_read"), ref: Ref, conversation_id: Id, seq: Seq }),
  T.Object({
    type: T.Literal("reaction"),
    ref: Ref,
    message_id: Id,
    emoji: T.String({ minLength: 1, maxLength: 64 }),
    op: T.Union([T.Literal("add"), T.Literal("remove")]),
  }),
  T.Object({
    type: T.Literal("presence_update"),
    ref: Ref,
    status: T.Union([T.Literal("online"), T.Literal("away"), T.Literal("dnd"), T.Literal("offline")]),
  }),
  T.Object({
    type: T.Literal("key_exchange"),
    ref: Ref,
    to_user_id: Id,
    to_device_id: T.Optional(Id),
    payload: Binary,
  }),
  T.Object({
    type: T.Literal("resume"),
    ref: Ref,
    positions: T.Record(T.String({ maxLength: 64 }), Seq, { maxProperties: 1000 }),
  }),
  T.Object({
    type: T.Literal("subscribe"),
    ref: Ref,
    channel: T.String({ pattern: "^[A-Za-z0-9_.-]{1,64}$" }),
  }),
]);
export type ClientFrame = Static<typeof ClientFrame>;
export type ClientFrameType = ClientFrame["type"];
export const CLIENT_FRAME_TYPES: readonly string[] = [
  "ping",
  "message",
  "typing_start",
  "typing_stop",
  "message_ack",
  "message_read",
  "reaction",
  "presence_update",
  "key_exchange",
  "resume",
  "subscribe",
];

/** Compiled once at load: the hot path runs generated code, not a schema walk. */
export const checkClientFrame = TypeCompiler.Compile(ClientFrame);

export type ServerFrame =
  | { type: "hello"; user_id: string; session_id: string; server_time: string; heartbeat_interval: number }
  | { type: "pong"; ref?: string | number; server_time: string }
  | { type: "ack"; ref?: string | number; client_msg_id: string; message_id: string; seq: number }
  | { type: "ok"; ref?: string | number }
  | { type: "error"; ref?: string | number; code: string; message: string }
  | { type: "event"; kind: string; conversation_id: string; seq: number; [field: string]: unknown }
  | { type: "typing"; conversation_id: string; user_id: string; state: "start" | "stop" }
  | { type: "presence"; user_id: string; status: string; last_seen: string | null }
  | { type: "receipt"; conversation_id: string; user_id: string; kind: "delivered" | "read"; seq: number }
  | { type: "key_exchange"; from_user_id: string; from_device_id: string; payload: Uint8Array | string }
  | { type: "resync"; conversation_id: string; ref?: string | number }
  | { type: "resumed"; conversation_id: string; seq: number; ref?: string | number }
  | { type: "announcement"; channel: string; text: string; sent_at: string };
