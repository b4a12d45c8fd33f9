// Encoded catch-up events, shared by every socket that replays them. After a reconnect storm every member
// of a conversation resumes from about the same position and is sent the same changes; each change was
// encoded once per socket (a sixth of the server's time in the bench's resume storm). A stored message
// version never changes (every edit, delete or reaction takes a new version_seq), and an entry is of one
// version with one status (sent, delivered, read: the members' positions as the resume read them), so it
// is never stale; past `maxBytes` of frames the oldest go first.

import { type MessageStatus, toMessageView } from "../modules/messages/model.ts";
import type { MessageRecord } from "../store/types.ts";
import { ENCODING_TAG, encode } from "./codec.ts";
import type { Encoding } from "./protocol.ts";

/** Bytes of encoded frames kept (messages may be up to MAX_MESSAGE_LENGTH each): 16 MiB. */
export const REPLAY_CACHE_BYTES = 16 * 1024 * 1024;

/** What a change looks like on the wire when it is replayed: created, changed or deleted. */
function replayKind(m: MessageRecord) {
  return m.version_seq === m.seq ? "message.created" : m.deleted ? "message.deleted" : "message.changed";
}

export class ReplayCache {
  private frames = new Map<string, Uint8Array | string>();
  private bytes = 0;

  constructor(private maxBytes = REPLAY_CACHE_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1)
      throw new Error("ReplayCache: maxBytes must be a positive integer");
  }

  /** Frames kept. */
  get size() {
    return this.frames.size;
  }

  /** Their bytes (a JSON frame's length in characters). */
  get heldBytes() {
    return this.bytes;
  }

  /** The `event` frame of this version of the message with this status, encoded for `encoding`. */
  frame(m: MessageRecord, encoding: Encoding, status: MessageStatus): Uint8Array | string {
    const key = `${ENCODING_TAG[encoding]}${status[0]}${m.version_seq}:${m.id}`;
    const known = this.frames.get(key);
    if (known !== undefined) return known;
    const encoded = encode(
      {
        type: "event",
        kind: replayKind(m),
        conversation_id: m.conversation_id,
        seq: m.version_seq,
        message: toMessageView(m, status),
      },
      encoding,
    );
    // A frame larger than a quarter of the cache is sent without being kept.
    if (encoded.length > this.maxBytes / 4) return encoded;
    // A copy: msgpackr's result is a view of a shared 8 KiB buffer, which the entry would keep alive.
    const frame = typeof encoded === "string" ? encoded : encoded.slice();
    this.bytes += frame.length;
    for (const [oldest, dropped] of this.frames) {
      if (this.bytes <= this.maxBytes) break;
      this.frames.delete(oldest);
      this.bytes -= dropped.length;
    }
    this.frames.set(key, frame);
    return frame;
  }
}
