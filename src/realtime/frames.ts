// The wire contract shared by the gateway and the SDK: subprotocols, close codes and server frames.
// Dependency-free so that browser bundles of the SDK stay small.

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

/** The kinds of `event` frames: changes in a conversation (replayed ones may be `message.changed`). */
export type EventKind =
  | "message.created"
  | "message.edited"
  | "message.deleted"
  | "message.changed"
  | "reaction.added"
  | "reaction.removed"
  | "participant.added"
  | "participant.removed"
  | "participant.updated"
  | "conversation.created"
  | "conversation.updated"
  | "conversation.deleted";

/**
 * A live `message.created` event carries the new message in this short form: the fields below, and of
 * the rest only those that differ from a new message's defaults. Omitted: conversation_id and seq (the
 * event's own), version_seq (= seq), status ("sent"), updated_at (= created_at), edited_at (null),
 * deleted (false), reactions ([]), and when unset message_type ("text"), client_msg_id, reply_to (null),
 * attachments ([]) and envelope (null). Every receiver decodes it for every message of a conversation, so
 * it is kept small; replayed events and REST carry the whole message.
 */
export interface LiveMessage {
  id: string;
  sender_id: string;
  content: string;
  created_at: string;
  message_type?: string;
  client_msg_id?: string;
  reply_to?: string;
  attachments?: unknown[];
  envelope?: Record<string, unknown>;
}

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
