// The WebSocket protocol's client frames, validated by compiled TypeBox checks. Server frames, close codes
// and subprotocol names live in frames.ts, which the SDK imports without pulling TypeBox into browsers.

import { type Static, Type as T } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Text } from "../lib/text.ts";

export * from "./frames.ts";

const Id = T.String({ minLength: 1, maxLength: 64 });
const Ref = T.Optional(T.Union([T.String({ maxLength: 64 }), T.Integer()]));
const Seq = T.Integer({ minimum: 0 });
/**
 * A public channel's name, the same in a socket's path, a subscribe and an announcement. Not `.` or `..`:
 * a client's URL drops those path segments (`/ws/public/..` is `/ws/`), so no public socket could open one.
 */
export const CHANNEL_NAME = /^(?!\.\.?$)[A-Za-z0-9_.-]{1,64}$/;
export const ChannelName = T.String({
  pattern: CHANNEL_NAME.source,
  error: "must be 1 to 64 letters, digits, _, . or -, and not . or ..",
});
export const PAYLOAD_BYTES = 16 * 1024;
/**
 * Binary payloads: up to 16 KiB of bytes in msgpack; in JSON, base64url text (padded or not) no longer than
 * 16 KiB encodes to, 4 characters per 3 bytes started (21,848).
 */
const Binary = T.Union([
  T.Uint8Array({ maxByteLength: PAYLOAD_BYTES }),
  T.String({ maxLength: 4 * Math.ceil(PAYLOAD_BYTES / 3), pattern: "^[A-Za-z0-9_-]*={0,2}$" }),
]);

const Attachment = T.Object({
  file_id: Id,
  file_name: Text({ minLength: 1, maxLength: 255 }),
  file_size: T.Integer({ minimum: 0 }),
  mime_type: Text({ minLength: 1, maxLength: 255 }),
});

export const ClientFrame = T.Union([
  T.Object({ type: T.Literal("ping"), ref: Ref }),
  T.Object({
    type: T.Literal("message"),
    ref: Ref,
    conversation_id: Id,
    client_msg_id: Text({ minLength: 1, maxLength: 64 }),
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
    /**
     * The conversations (among `positions`) whose receipt positions to send, each with the version of
     * them the client holds (a `receipts` frame's), or null for none: those still at it are skipped.
     */
    receipts: T.Optional(
      T.Record(T.String({ maxLength: 64 }), T.Union([Seq, T.Null()]), { maxProperties: 1000 }),
    ),
  }),
  T.Object({
    type: T.Literal("subscribe"),
    ref: Ref,
    channel: ChannelName,
  }),
  T.Object({
    type: T.Literal("unsubscribe"),
    ref: Ref,
    channel: ChannelName,
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
  "unsubscribe",
];

/** Compiled once at load: the hot path runs generated code, not a schema walk. */
export const checkClientFrame = TypeCompiler.Compile(ClientFrame);

/** Each frame type's own check, for saying what is wrong with a frame the union refused. */
const checkByType = new Map(
  ClientFrame.anyOf.map((schema) => [schema.properties.type.const as string, TypeCompiler.Compile(schema)]),
);

/**
 * What is wrong with a frame of a known type that checkClientFrame refused, as "field: why" (the union's
 * own first error is only "Expected union value"). The field is written as REST writes it: a.0.b.
 */
export function frameError(frame: { type: string }): string {
  const first = checkByType.get(frame.type)?.Errors(frame).First();
  if (!first) return "frame: invalid";
  const field = first.path.replace(/^\//, "").replaceAll("/", ".");
  // A schema's own message, as REST gives it (plugins/http.ts): Text's says what its characters count.
  const why = typeof first.schema.error === "string" ? first.schema.error : first.message;
  return `${field || "frame"}: ${why}`;
}
