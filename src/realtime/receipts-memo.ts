// Every member's receipt positions of a dm or group, read once while they stay as they are, with the
// `receipts` frame a resume sends of them encoded once per encoding. After a reconnect storm every member of
// a group resumes it at once, and each would read all of its members (the bench's 5,000 clients in groups
// of 100: half a million rows) to be told the same thing. A conversation's receipts_version (the store's
// MembershipRecord) moves with every change of its members' positions, after the change, and a resume has
// read it (with the user's membership) before it asks for a snapshot: one read at that version is the
// answer for every resume that read the same version.

import { floorOf } from "../store/floor.ts";
import type { ParticipantRecord, PositionFloor } from "../store/types.ts";
import { encode } from "./codec.ts";
import type { Encoding, ReceiptPosition, ServerFrame } from "./protocol.ts";

/** Members' positions kept, over all conversations (~170 bytes each with their frame): about 17 MB. */
export const RECEIPTS_MEMO_MEMBERS = 100_000;

export interface ReceiptsSnapshot {
  /** The conversation's receipts_version the positions were read at (or after). */
  readonly version: number;
  /** How many members. */
  readonly size: number;
  /** Their two lowest of each kind, for the status of the messages a resume replays. */
  readonly floor: PositionFloor;
  /** The `receipts` frame of them in this encoding. */
  frame(encoding: Encoding): Uint8Array | string;
}

interface Entry {
  version: number;
  snapshot: Promise<ReceiptsSnapshot>;
  /** Its members, once read (what it counts for in `held`). */
  weight: number;
}

function snapshotOf(
  conversationId: string,
  version: number,
  members: readonly Pick<ParticipantRecord, "user_id" | "delivered_seq" | "last_read_seq">[],
): ReceiptsSnapshot {
  const positions: ReceiptPosition[] = members.map((m) => ({
    user_id: m.user_id,
    delivered: m.delivered_seq,
    read: m.last_read_seq,
  }));
  const frame: ServerFrame = {
    type: "receipts",
    conversation_id: conversationId,
    version,
    members: positions,
  };
  const frames: Partial<Record<Encoding, Uint8Array | string>> = {};
  return {
    version,
    size: members.length,
    floor: floorOf(members),
    frame(encoding) {
      let bytes = frames[encoding];
      if (bytes === undefined) {
        const encoded = encode(frame, encoding);
        // A copy: msgpackr's result is a view of a shared buffer, which the next frame it writes overwrites.
        bytes = typeof encoded === "string" ? encoded : encoded.slice();
        frames[encoding] = bytes;
      }
      return bytes;
    },
  };
}

export class ReceiptsMemo {
  /** By conversation id, least recently used first. */
  private entries = new Map<string, Entry>();
  private held = 0;

  constructor(private maxMembers = RECEIPTS_MEMO_MEMBERS) {
    if (!Number.isInteger(maxMembers) || maxMembers < 1)
      throw new Error("ReceiptsMemo: maxMembers must be a positive integer");
  }

  /** Members' positions kept. */
  get heldMembers() {
    return this.held;
  }

  /**
   * The conversation's snapshot at `version` (the receipts_version just read): the one kept at that version,
   * or one `read` makes, which the resumes asking for that version meanwhile share. One kept at another
   * version is not the answer: an older one is replaced; a newer one (a resume that read the version just
   * before it moved) is left, and this read answers its caller alone. Nor is one kept from a store that went
   * back to an older backup, or a conversation made again under a deleted one's id: their versions start
   * again below it, and each read answers its caller alone until the version passes it.
   */
  snapshot(
    conversationId: string,
    version: number,
    read: () => Promise<readonly ParticipantRecord[]>,
  ): Promise<ReceiptsSnapshot> {
    const known = this.entries.get(conversationId);
    if (known?.version === version) {
      // Most recently used: to the end of the eviction order.
      this.entries.delete(conversationId);
      this.entries.set(conversationId, known);
      return known.snapshot;
    }
    const made = read().then((members) => snapshotOf(conversationId, version, members));
    if (known && known.version > version) return made;
    if (known) this.drop(conversationId, known);
    const entry: Entry = { version, snapshot: made, weight: 0 };
    this.entries.set(conversationId, entry);
    made.then(
      (snapshot) => this.settle(conversationId, entry, snapshot),
      () => {
        if (this.entries.get(conversationId) === entry) this.entries.delete(conversationId);
      },
    );
    return made;
  }

  /** A read has come back: counted, and the least recently used dropped past the bound. */
  private settle(conversationId: string, entry: Entry, snapshot: ReceiptsSnapshot) {
    if (this.entries.get(conversationId) !== entry) return;
    // One more than its members, so that many empty ones are bounded too.
    const weight = snapshot.size + 1;
    // A conversation larger than a quarter of the memo is answered without being kept.
    if (weight > this.maxMembers / 4) return this.drop(conversationId, entry);
    entry.weight = weight;
    this.held += weight;
    for (const [oldest, kept] of this.entries) {
      if (this.held <= this.maxMembers) break;
      this.drop(oldest, kept);
    }
  }

  private drop(conversationId: string, entry: Entry) {
    this.entries.delete(conversationId);
    this.held -= entry.weight;
  }
}
