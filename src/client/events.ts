// The typed events a realtime connection emits, and a tiny emitter for them.

import type { EventKind, LiveMessage, ServerFrame } from "../realtime/frames.ts";

export type { EventKind };

import type { ParleyError } from "./errors.ts";
import type { MessageView } from "./types.ts";

/** A change in a conversation. `seq` is the conversation seq it took (0 for changes outside the log). */
export interface ConversationEvent {
  type: "event";
  kind: EventKind;
  conversation_id: string;
  seq: number;
  message?: MessageView;
  /**
   * True for a change the SDK caught up on rather than heard as it happened: one its resume brought (at a
   * connect or reconnect, to fill a hole in the live events, or to start a conversation joined) or that it
   * paged over REST for a resync. Absent on live events. The server does not say it: the SDK marks what
   * comes for a conversation between its resume and the `resumed` frame, up to that frame's seq.
   */
  replayed?: boolean;
  [field: string]: unknown;
}

/**
 * An event frame as the app sees it: a live `message.created` carries its message in the short wire
 * form (LiveMessage), which is filled out here to the whole MessageView that REST and replays give.
 */
export function fromWire(frame: ConversationEvent): ConversationEvent {
  if (frame.kind !== "message.created" || !frame.message || "seq" in frame.message) return frame;
  const live = frame.message as unknown as LiveMessage;
  const message: MessageView = {
    id: live.id,
    conversation_id: frame.conversation_id,
    sender_id: live.sender_id,
    seq: frame.seq,
    version_seq: frame.seq,
    client_msg_id: live.client_msg_id ?? null,
    content: live.content,
    message_type: (live.message_type ?? "text") as MessageView["message_type"],
    status: "sent",
    reply_to: live.reply_to ?? null,
    attachments: (live.attachments ?? []) as MessageView["attachments"],
    reactions: [],
    envelope: live.envelope ?? null,
    edited_at: null,
    deleted: false,
    created_at: live.created_at,
    updated_at: live.created_at,
  };
  return { ...frame, message };
}

/** The keys of a catch-up's event frame (replay-cache.ts on the server), and the kinds it may have. */
const REPLAY_KEYS = ["type", "kind", "conversation_id", "seq", "message"];
const REPLAY_KINDS = new Set(["message.created", "message.changed", "message.deleted"]);

/**
 * Whether an event frame, as it came off the wire (before fromWire), is shaped as only a resume's replay
 * is: a message change with these keys alone and the whole message. Live frames never are: a live
 * `message.created` carries the short form (no `version_seq`), a live `message.deleted` says `by`, and
 * every other live change has a kind a replay never has. The SDK delivers a replayed change at once
 * (catchup.ts); one it cannot tell is held until the resume's end, which is never wrong, only slower.
 */
export function replayShaped(frame: ConversationEvent): boolean {
  const keys = Object.keys(frame);
  const message = frame.message as Record<string, unknown> | undefined;
  return (
    REPLAY_KINDS.has(frame.kind) &&
    keys.length === REPLAY_KEYS.length &&
    REPLAY_KEYS.every((k) => keys.includes(k)) &&
    typeof message === "object" &&
    message !== null &&
    message.version_seq === frame.seq
  );
}

type Frame<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/**
 * A member's delivered or read position moved to `seq`. `replayed` marks one the SDK learnt from a resume
 * (what happened while it was away) rather than as it happened; each move is told once either way.
 */
export type ReceiptEvent = Frame<"receipt"> & { replayed?: boolean };

export interface OpenInfo {
  user_id: string;
  session_id: string;
  server_time: string;
  heartbeat_interval: number;
  /** False for a first connection (as a connect() after close() is), true after an automatic reconnect. */
  reconnected: boolean;
}

export interface RealtimeEventMap {
  open: OpenInfo;
  /**
   * The socket closed. `reconnecting: false` is final: after close(), a first connection that failed, or
   * the end of the session, whose reason `error` then gives (`session_revoked`, `unauthorized`, ...).
   */
  close: { code: number; reason: string; reconnecting: boolean; error?: ParleyError };
  event: ConversationEvent;
  typing: Frame<"typing">;
  presence: Frame<"presence">;
  receipt: ReceiptEvent;
  key_exchange: Omit<Frame<"key_exchange">, "payload"> & { payload: Uint8Array };
  announcement: Frame<"announcement">;
  /** The server had too many changes to replay: the SDK is catching up over REST. */
  resync: { conversation_id: string };
  /** A conversation is caught up to `seq` after a (re)connect. */
  resumed: { conversation_id: string; seq: number };
  /**
   * The user is no longer in a conversation (removed, or it was deleted) and the connection stops
   * following it; told once. Live, it comes after the `participant.removed` naming the user or the
   * `conversation.deleted` event; while away, no event comes, and this is how the app learns it (at the
   * resume that finds it).
   */
  gone: { conversation_id: string };
  /** Error frames that answer no request of ours, and failures of background work (catch-up). */
  error: ParleyError;
}

export type RealtimeEventType = keyof RealtimeEventMap;
export type Handler<K extends RealtimeEventType> = (payload: RealtimeEventMap[K]) => void;

export class Emitter {
  private handlers = new Map<RealtimeEventType, Set<(payload: never) => void>>();

  on<K extends RealtimeEventType>(type: K, handler: Handler<K>): () => void {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler as (payload: never) => void);
    return () => set.delete(handler as (payload: never) => void);
  }

  /** A throwing handler must not break the connection: its error goes to the `error` handlers. */
  emit<K extends RealtimeEventType>(type: K, payload: RealtimeEventMap[K], onThrow: (err: unknown) => void) {
    for (const handler of this.handlers.get(type) ?? []) {
      try {
        (handler as Handler<K>)(payload);
      } catch (err) {
        onThrow(err);
      }
    }
  }
}
