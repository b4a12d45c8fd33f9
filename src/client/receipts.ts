// Where the members of each conversation have got to (delivered, read), as the server's receipts say: the
// live `receipt` frames, and the `receipts` frame a resume brings of what happened while we were away.
// Positions only move forward, and the app is told each move once, whichever way it came: a snapshot that
// moves nothing tells nothing, and neither does a live receipt a snapshot had already brought.

import type { ServerFrame } from "../realtime/frames.ts";
import type { ReceiptEvent } from "./events.ts";

/** One member's positions: delivered up to `delivered`, read up to `read` (0: nothing known). */
export interface MemberReceipts {
  delivered: number;
  read: number;
}

type ReceiptFrame = Extract<ServerFrame, { type: "receipt" }>;
type SnapshotFrame = Extract<ServerFrame, { type: "receipts" }>;

export class Receipts {
  /** conversation id -> user id -> positions. */
  private positions = new Map<string, Map<string, MemberReceipts>>();
  /** The version of a conversation's receipts the last snapshot gave, for the next resume to name. */
  private versions = new Map<string, number>();

  constructor(private tell: (receipt: ReceiptEvent) => void) {}

  /** What the next resume says it holds of the conversation's receipts: a version, or null for none. */
  held(conversationId: string): number | null {
    return this.versions.get(conversationId) ?? null;
  }

  /** Every member's positions known in the conversation. */
  of(conversationId: string): Record<string, MemberReceipts> {
    const members = this.positions.get(conversationId);
    const out: Record<string, MemberReceipts> = {};
    for (const [userId, p] of members ?? []) out[userId] = { ...p };
    return out;
  }

  /** A live receipt: told when it moves the member's position. */
  live(frame: ReceiptFrame) {
    if (typeof frame.seq !== "number" || typeof frame.user_id !== "string") return;
    if (this.move(frame.conversation_id, frame.user_id, frame.kind, frame.seq)) this.tell(frame);
  }

  /**
   * A resume's snapshot: each position it moves is told as a receipt marked `replayed` (read before
   * delivered: a read is a delivery too, as the server's read moves both and tells only the read), and
   * its version kept for the next resume.
   */
  snapshot(frame: SnapshotFrame) {
    const id = frame.conversation_id;
    // A live one: the moves of the last moment in a dm or group, told as any live receipt.
    const replayed = frame.live === true ? {} : { replayed: true };
    for (const m of Array.isArray(frame.members) ? frame.members : []) {
      if (typeof m?.user_id !== "string") continue;
      for (const kind of ["read", "delivered"] as const) {
        const seq = m[kind];
        if (typeof seq === "number" && this.move(id, m.user_id, kind, seq))
          this.tell({ type: "receipt", conversation_id: id, user_id: m.user_id, kind, seq, ...replayed });
      }
    }
    if (typeof frame.version === "number") this.versions.set(id, frame.version);
  }

  /** We are no longer in the conversation (removed, or it is gone). */
  forget(conversationId: string) {
    this.positions.delete(conversationId);
    this.versions.delete(conversationId);
  }

  /** Moves a position forward; answers whether it moved. A read moves delivered with it, untold. */
  private move(conversationId: string, userId: string, kind: "delivered" | "read", seq: number): boolean {
    let members = this.positions.get(conversationId);
    if (!members) {
      members = new Map();
      this.positions.set(conversationId, members);
    }
    const known = members.get(userId) ?? { delivered: 0, read: 0 };
    members.set(userId, known);
    if (seq <= known[kind]) return false;
    known[kind] = seq;
    if (kind === "read") known.delivered = Math.max(known.delivered, seq);
    return true;
  }
}
