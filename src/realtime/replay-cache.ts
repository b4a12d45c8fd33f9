// Encoded catch-up events, shared by every socket that replays them. After a reconnect storm every member
// of a conversation resumes from about the same position and is sent the same changes; each change was
// encoded once per socket (a sixth of the server's time in the bench's resume storm). A stored message
// version never changes (every edit, delete or reaction takes a new version_seq), so an entry is never
// stale; past `max` entries the oldest go first.

import { toMessageView } from "../modules/messages/model.ts";
import type { MessageRecord } from "../store/types.ts";
import { encode } from "./codec.ts";
import type { Encoding } from "./protocol.ts";

/** Entries kept: a few hundred bytes each. */
export const REPLAY_CACHE_MAX = 20_000;

/** What a change looks like on the wire when it is replayed: created, changed or deleted. */
export function replayKind(m: MessageRecord) {
  return m.version_seq === m.seq ? "message.created" : m.deleted ? "message.deleted" : "message.changed";
}

export class ReplayCache {
  private frames = new Map<string, Uint8Array | string>();

  constructor(private max = REPLAY_CACHE_MAX) {
    if (!Number.isInteger(max) || max < 1) throw new Error("ReplayCache: max must be a positive integer");
  }

  get size() {
    return this.frames.size;
  }

  /** The `event` frame of this version of the message, encoded for `encoding`. */
  frame(m: MessageRecord, encoding: Encoding): Uint8Array | string {
    const key = `${encoding === "msgpack" ? "m" : "j"}${m.version_seq}:${m.id}`;
    const known = this.frames.get(key);
    if (known !== undefined) return known;
    const encoded = encode(
      {
        type: "event",
        kind: replayKind(m),
        conversation_id: m.conversation_id,
        seq: m.version_seq,
        message: toMessageView(m),
      },
      encoding,
    );
    // A copy: msgpackr's result is a view of a shared 8 KiB buffer, which the entry would keep alive.
    const bytes = typeof encoded === "string" ? encoded : encoded.slice();
    if (this.frames.size >= this.max) {
      const oldest = this.frames.keys().next().value;
      if (oldest !== undefined) this.frames.delete(oldest);
    }
    this.frames.set(key, bytes);
    return bytes;
  }
}
