// What nodes tell each other through the broker (scale-out): one kind byte, then MessagePack. A frame is
// relayed as the very bytes its msgpack sockets get, so a receiving node publishes it without decoding.

import { encode } from "./codec.ts";
import type { ServerFrame } from "./protocol.ts";

/** Every node joins it: what is not about one conversation, user or channel (revoked sessions). */
export const NODE_WIDE = "n:all";

export const RELAY = {
  /** A frame for the channel's sockets. */
  frame: 0,
  /** The same, and the conversation's members changed: caches of membership must forget it. */
  membershipFrame: 1,
  /** On a user's channel: their sockets join a conversation and get its frame directly. */
  join: 2,
  /** On a user's channel: their sockets leave a conversation. */
  leave: 3,
  /** On a user's channel: a frame for one of their devices (sessions). */
  session: 4,
  /** On NODE_WIDE: sessions revoked; their sockets close everywhere. */
  revoke: 5,
  /** On NODE_WIDE: a user's presence changed; each node sends it to the user's peers it has sockets of. */
  presence: 6,
  /**
   * On NODE_WIDE: a node had lost Redis and has it again, and what it said meanwhile (revocations,
   * membership changes) was lost and too much to list: every node looks again at all its sockets (gateway
   * reconcile).
   */
  reconcile: 7,
  /**
   * On NODE_WIDE: what a node could not tell the others while it had lost Redis, told once it has it again
   * (the conversations whose members changed, the users who joined or left one, the sessions revoked, the
   * users whose presence changed, the conversations whose changes did not reach them): every node looks
   * again at those alone.
   */
  missed: 8,
  /**
   * On NODE_WIDE: a node could not hear the others for `ms` (it had lost Redis), and is back: each node
   * tells again the presence changes it relayed in that time.
   */
  deaf: 9,
  /**
   * A typing frame for the channel's sockets. Each node that gets a start ends it for its sockets a moment
   * after it would have expired, should the stop of the node it was typed through never come (that node
   * died, or lost Redis); and a start there takes the user's typing over from a socket of theirs here.
   */
  typing: 10,
} as const;

/** What a node could not tell the others (the body of a `missed` message). */
export interface Missed {
  conversation_ids: string[];
  user_ids: string[];
  session_ids: string[];
  presence_ids: string[];
  /** Conversations whose changes the others missed: their sockets are told where the log stands. */
  head_ids: string[];
}

export type Relayed =
  | { kind: typeof RELAY.frame | typeof RELAY.membershipFrame | typeof RELAY.typing; bytes: Uint8Array }
  | { kind: typeof RELAY.join; conversation_id: string; frame: ServerFrame }
  | { kind: typeof RELAY.leave; conversation_id: string }
  | { kind: typeof RELAY.session; session_id: string; frame: ServerFrame }
  | { kind: typeof RELAY.revoke; session_ids: string[] }
  | { kind: typeof RELAY.presence; user_id: string; frame: ServerFrame; peers?: string[] }
  | { kind: typeof RELAY.reconcile }
  | ({ kind: typeof RELAY.missed } & Missed)
  | { kind: typeof RELAY.deaf; ms: number };

function withKind(kind: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength + 1);
  out[0] = kind;
  out.set(bytes, 1);
  return out;
}

/** Kind byte + a frame already encoded as msgpack. */
export const relayFrame = (
  msgpack: Uint8Array,
  kind: typeof RELAY.frame | typeof RELAY.membershipFrame | typeof RELAY.typing,
): Uint8Array => withKind(kind, msgpack);

/** Kind byte + a msgpack body, for everything that is not a bare frame. */
export function relayMessage(message: Exclude<Relayed, { bytes: Uint8Array }>): Uint8Array {
  const { kind, ...body } = message;
  return withKind(kind, encode(body, "msgpack") as Uint8Array);
}

/** Throws on bytes that are not a relayed message: a node must not be stopped by another's bad bytes. */
export function parseRelayed(payload: Uint8Array, decode: (bytes: Uint8Array) => unknown): Relayed {
  const kind = payload[0];
  const rest = payload.subarray(1);
  if (kind === RELAY.frame || kind === RELAY.membershipFrame || kind === RELAY.typing)
    return { kind, bytes: rest };
  const body = decode(rest) as Record<string, unknown> | null;
  if (!body || typeof body !== "object") throw new Error("relay: body is not a map");
  const str = (v: unknown) => {
    if (typeof v !== "string") throw new Error("relay: expected a string");
    return v;
  };
  switch (kind) {
    case RELAY.join:
      return { kind, conversation_id: str(body.conversation_id), frame: body.frame as ServerFrame };
    case RELAY.leave:
      return { kind, conversation_id: str(body.conversation_id) };
    case RELAY.session:
      return { kind, session_id: str(body.session_id), frame: body.frame as ServerFrame };
    case RELAY.revoke:
      if (!Array.isArray(body.session_ids)) throw new Error("relay: session_ids is not a list");
      return { kind, session_ids: body.session_ids.map(str) };
    case RELAY.presence: {
      const peers = Array.isArray(body.peers) ? body.peers.map(str) : undefined;
      return {
        kind,
        user_id: str(body.user_id),
        frame: body.frame as ServerFrame,
        ...(peers ? { peers } : {}),
      };
    }
    case RELAY.reconcile:
      return { kind };
    case RELAY.missed: {
      const list = (v: unknown) => {
        if (!Array.isArray(v)) throw new Error("relay: expected a list");
        return v.map(str);
      };
      return {
        kind,
        conversation_ids: list(body.conversation_ids),
        user_ids: list(body.user_ids),
        session_ids: list(body.session_ids),
        presence_ids: list(body.presence_ids),
        head_ids: list(body.head_ids),
      };
    }
    case RELAY.deaf:
      if (typeof body.ms !== "number" || !(body.ms >= 0)) throw new Error("relay: ms is not a duration");
      return { kind, ms: body.ms };
    default:
      throw new Error(`relay: unknown kind ${kind}`);
  }
}
