// Catch-up reads kept while their conversation has not changed. After a reconnect storm every member of a
// conversation asks for the changes after the same position (they had all seen the same live events), and
// each asked SQLite again: in the bench's resume storm those reads were the server's largest cost (5,000
// clients, 1,000,000 changes read, ~3 µs each). A conversation's last_seq moves with every append and every
// change (both take the next seq in the transaction that writes them), so a read made when it was n is
// still the answer while it is n, and is dropped the first time it is not.

import type { MessageRecord } from "../types.ts";

/** Bytes of kept reads, estimated from their rows' text (see `rowBytes`): 16 MiB. */
export const EVENTS_MEMO_BYTES = 16 * 1024 * 1024;

/** What a row is counted as, besides its text columns: ids, numbers and the object around them. */
const ROW_OVERHEAD = 256;

/** A stored row's weight in the memo: its text columns (as read, before JSON parsing) and the overhead. */
export const rowBytes = (row: {
  content: string;
  attachments: string;
  reactions: string;
  envelope: string | null;
}) =>
  ROW_OVERHEAD +
  row.content.length +
  row.attachments.length +
  row.reactions.length +
  (row.envelope?.length ?? 0);

interface Conversation {
  /** The conversation's last_seq when every read below was made. */
  lastSeq: number;
  /** `${after}:${limit}` -> the read's records. */
  reads: Map<string, readonly MessageRecord[]>;
  bytes: number;
}

export class EventsMemo {
  /** By conversation id, least recently used first. */
  private conversations = new Map<string, Conversation>();
  private bytes = 0;

  constructor(private maxBytes = EVENTS_MEMO_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1)
      throw new Error("EventsMemo: maxBytes must be a positive integer");
  }

  /** Bytes held, as estimated. */
  get heldBytes() {
    return this.bytes;
  }

  /** The kept read, if the conversation's last_seq is still `lastSeq`; a conversation that moved is dropped. */
  get(
    conversationId: string,
    lastSeq: number,
    after: number,
    limit: number,
  ): readonly MessageRecord[] | undefined {
    const known = this.conversations.get(conversationId);
    if (!known) return undefined;
    if (known.lastSeq !== lastSeq) {
      this.drop(conversationId, known);
      return undefined;
    }
    const read = known.reads.get(`${after}:${limit}`);
    if (read) {
      // Most recently used: to the end of the eviction order.
      this.conversations.delete(conversationId);
      this.conversations.set(conversationId, known);
    }
    return read;
  }

  /**
   * Keeps a read made when the conversation's last_seq was `lastSeq` (read before it: a write committed
   * in between only makes the read newer than its `lastSeq`, and last_seq never returns to that value).
   */
  set(
    conversationId: string,
    lastSeq: number,
    after: number,
    limit: number,
    records: readonly MessageRecord[],
    bytes: number,
  ) {
    // A read larger than a quarter of the memo is answered without being kept.
    if (bytes > this.maxBytes / 4) return;
    let known = this.conversations.get(conversationId);
    if (known && known.lastSeq !== lastSeq) {
      // Only a newer read replaces the conversation's reads (an older one is never asked for again).
      if (known.lastSeq > lastSeq) return;
      this.drop(conversationId, known);
      known = undefined;
    }
    if (!known) {
      known = { lastSeq, reads: new Map(), bytes: 0 };
      this.conversations.set(conversationId, known);
    }
    const key = `${after}:${limit}`;
    if (known.reads.has(key)) return;
    known.reads.set(key, records);
    known.bytes += bytes;
    this.bytes += bytes;
    for (const [oldest, conversation] of this.conversations) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(oldest, conversation);
    }
  }

  private drop(conversationId: string, conversation: Conversation) {
    this.conversations.delete(conversationId);
    this.bytes -= conversation.bytes;
  }
}
