// A message's receipts counted (ReceiptCounts) from what each adapter finds in its indexes: how many members
// there are, how many joined at or after the message, how many have it delivered, how many have read it,
// and the sender's own row. The same arithmetic for both adapters.

import type { ParticipantRecord, ReceiptCounts } from "./types.ts";

/** Counts of index ranges at or after a message's seq, over every member, its sender among them. */
export interface ReceiptRanges {
  members: number;
  /** Members whose joined_seq is at or after the seq: not among those it was sent to. */
  joined: number;
  /** Members whose delivered_seq is at or after it. */
  delivered: number;
  /** Members whose last_read_seq is at or after it. */
  read: number;
  sender: Pick<ParticipantRecord, "joined_seq" | "delivered_seq" | "last_read_seq"> | null;
}

/**
 * The counts, given that a member's positions are never below their joined_seq (the stores keep it so):
 * every member who joined at or after the message is among those who have it delivered and read, and is
 * taken out of both as out of the members; the sender, if still a member who joined before it, too.
 */
export function receiptCountsFrom(r: ReceiptRanges, seq: number): ReceiptCounts {
  const sender = r.sender && r.sender.joined_seq < seq ? r.sender : null;
  return {
    recipients: r.members - r.joined - (sender ? 1 : 0),
    delivered: r.delivered - r.joined - (sender && sender.delivered_seq >= seq ? 1 : 0),
    read: r.read - r.joined - (sender && sender.last_read_seq >= seq ? 1 : 0),
  };
}
