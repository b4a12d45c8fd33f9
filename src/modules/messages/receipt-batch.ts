// The live receipts of a dm or group, gathered for a moment and told in one frame. Every member's ack or
// read is news to every other member: a group of n whose members all take a message made n publishes to n
// sockets each, n² frames (a million for a group of 1,024), where one frame a window carries them all.

import type { ReceiptPosition } from "../../realtime/frames.ts";
import type { Hub } from "../../realtime/hub.ts";

/** How long a conversation's receipts gather, from the first, before they are told. */
export const RECEIPT_WINDOW_MS = 50;

export class ReceiptBatch {
  /** conversation id -> user id -> the positions that moved in this window (0: that kind did not). */
  private pending = new Map<string, Map<string, ReceiptPosition>>();

  constructor(
    private hub: Hub,
    private windowMs = RECEIPT_WINDOW_MS,
  ) {}

  /** A member's position moved: told with the others' of the conversation at the window's end. */
  add(conversationId: string, userId: string, kind: "delivered" | "read", seq: number) {
    let members = this.pending.get(conversationId);
    if (!members) {
      members = new Map();
      this.pending.set(conversationId, members);
      setTimeout(() => this.flush(conversationId), this.windowMs).unref?.();
    }
    let moved = members.get(userId);
    if (!moved) {
      moved = { user_id: userId, delivered: 0, read: 0 };
      members.set(userId, moved);
    }
    moved[kind] = Math.max(moved[kind], seq);
  }

  private flush(conversationId: string) {
    const members = this.pending.get(conversationId);
    this.pending.delete(conversationId);
    if (members)
      this.hub.publish({
        kind: "receipts.moved",
        conversation_id: conversationId,
        seq: 0,
        members: [...members.values()],
      });
  }
}
