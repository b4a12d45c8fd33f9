// The wire contract shared by the gateway and the SDK: subprotocols, close codes and server frames.
// Dependency-free so that browser bundles of the SDK stay small.

export const SUBPROTOCOL_MSGPACK = "parley.msgpack";
/** MessagePack with msgpackr's records and the shared RECORD_STRUCTURES below, both ways. */
export const SUBPROTOCOL_MSGPACKR = "parley.msgpackr.1";
export const SUBPROTOCOL_JSON = "parley.json";
/** Browsers cannot set headers on a WebSocket: the token rides as a subprotocol entry `bearer.<jwt>`. */
export const BEARER_PREFIX = "bearer.";

/** `msgpack`: plain maps, for any MessagePack library. `msgpackr`: records (below). `json`: text. */
export type Encoding = "msgpack" | "msgpackr" | "json";
export const ENCODINGS: readonly Encoding[] = ["msgpackr", "msgpack", "json"];
/** The subprotocol that asks for each encoding. */
export const SUBPROTOCOLS: Record<Encoding, string> = {
  msgpackr: SUBPROTOCOL_MSGPACKR,
  msgpack: SUBPROTOCOL_MSGPACK,
  json: SUBPROTOCOL_JSON,
};

/**
 * The record structures of `parley.msgpackr.1`: a map whose keys are one of these lists, in this order,
 * travels as a one-byte structure id and its values, with no keys; any other map is a record whose keys
 * are written inline in the frame. Both ends must use msgpackr with these as its shared structures
 * (`recordOptions()` below): with them the integers 64-127 are never one-byte, so a plain MessagePack
 * encoder is not a peer on this subprotocol. The list is part of the subprotocol: a change is a new
 * subprotocol name, never an edit of this one.
 */
export const RECORD_STRUCTURES: readonly (readonly string[])[] = [
  // Server frames, the most frequent first: a live message, its ack, the short message with and without
  // the sender's key, and the whole message that replays and REST carry.
  ["type", "kind", "conversation_id", "seq", "message"],
  ["id", "sender_id", "content", "created_at", "client_msg_id"],
  ["id", "sender_id", "content", "created_at"],
  ["type", "ref", "client_msg_id", "message_id", "seq"],
  ["type", "client_msg_id", "message_id", "seq"],
  [
    "id",
    "conversation_id",
    "sender_id",
    "seq",
    "version_seq",
    "client_msg_id",
    "content",
    "message_type",
    "status",
    "reply_to",
    "attachments",
    "reactions",
    "envelope",
    "edited_at",
    "deleted",
    "created_at",
    "updated_at",
  ],
  ["type", "conversation_id", "user_id", "state"],
  ["type", "conversation_id", "user_id", "kind", "seq"],
  ["type", "user_id", "status", "last_seen"],
  ["type", "ref", "server_time"],
  ["type", "ref"],
  // Client frames, as the SDK builds them: a message with and without a ref, a receipt, typing, ping.
  ["type", "conversation_id", "client_msg_id", "content", "ref"],
  ["type", "conversation_id", "client_msg_id", "content"],
  ["type", "conversation_id", "seq", "ref"],
  ["type", "conversation_id"],
  ["type"],
];

/**
 * msgpackr's options for `parley.msgpack`: plain maps (no records extension), so that any MessagePack
 * library can read the frames; 64-bit integers as numbers.
 */
export const PLAIN_OPTIONS = { useRecords: false, mapsAsObjects: true, int64AsType: "number" } as const;

/**
 * msgpackr's options for `parley.msgpackr.1` (PLAIN_OPTIONS with records). The structures are a fresh copy each (msgpackr annotates
 * them) marked shared: a frame may define a record of its own under a shared id, and msgpackr puts a
 * shared structure back after the frame only when it is so marked. Unmarked, one client's frame would
 * redefine the structure for every frame the reader reads after it.
 */
export function recordOptions() {
  return {
    ...PLAIN_OPTIONS,
    useRecords: true,
    structures: RECORD_STRUCTURES.map((keys) => Object.assign([...keys], { isShared: true })),
    maxSharedStructures: RECORD_STRUCTURES.length,
  } as const;
}

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

/** One member's positions in a `receipts` frame: delivered up to `delivered`, read up to `read`. */
export interface ReceiptPosition {
  user_id: string;
  delivered: number;
  read: number;
}

export type ServerFrame =
  | {
      type: "hello";
      user_id: string;
      session_id: string;
      server_time: string;
      heartbeat_interval: number;
      /** The largest frame the server reads, in bytes (WS_MAX_PAYLOAD); larger ones close with 1009. */
      max_payload?: number;
      /** The frame rate a connection may keep up (WS_RATE_PER_SECOND)… */
      rate_per_second?: number;
      /** …with this burst (WS_RATE_BURST); over it `rate_limited`, and a flood closes with 4002. */
      rate_burst?: number;
    }
  | { type: "pong"; ref?: string | number; server_time: string }
  | { type: "ack"; ref?: string | number; client_msg_id: string; message_id: string; seq: number }
  | { type: "ok"; ref?: string | number }
  | {
      type: "error";
      ref?: string | number;
      code: string;
      message: string;
      /** A resume's conversations the user is not in (or that do not exist), all named in one error. */
      conversation_ids?: string[];
    }
  | { type: "event"; kind: string; conversation_id: string; seq: number; [field: string]: unknown }
  | { type: "typing"; conversation_id: string; user_id: string; state: "start" | "stop" }
  | { type: "presence"; user_id: string; status: string; last_seen: string | null }
  | { type: "receipt"; conversation_id: string; user_id: string; kind: "delivered" | "read"; seq: number }
  | { type: "key_exchange"; from_user_id: string; from_device_id: string; payload: Uint8Array | string }
  /**
   * Where receipts stand in a conversation a resume asked them of (its `receipts` field): in a dm or group
   * every member's positions (the user's own among them) as of `version`, which the next resume names to
   * skip them while they stay; in a channel, where members' receipts go to their own devices only, the
   * user's own positions, and no version. Sent before the conversation's `resumed` (or `resync`).
   * `live`: the members of a dm or group whose positions moved in the last moment (0 for a kind that did
   * not), told as they move; no version.
   */
  | {
      type: "receipts";
      conversation_id: string;
      version?: number;
      members: ReceiptPosition[];
      live?: true;
    }
  | { type: "resync"; conversation_id: string; ref?: string | number }
  | { type: "resumed"; conversation_id: string; seq: number; ref?: string | number }
  /**
   * Where conversations' logs stand (conversation id -> last seq), after live changes may have been lost
   * between nodes: a client behind one resumes it.
   */
  | { type: "heads"; conversations: Record<string, number> }
  | { type: "announcement"; channel: string; text: string; sent_at: string };
