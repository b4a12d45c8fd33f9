// Reads of a conversation's log kept while the conversation has not changed. After a reconnect storm every
// member of a conversation asks for the changes after the same position (they had all seen the same live
// events), and each asked SQLite again: in the bench's resume storm those reads were the server's largest
// cost (5,000 clients, 1,000,000 changes read, ~3 µs each). Members opening a conversation read the same
// latest page the same way. A conversation's last_seq moves with every append and every change (both take
// the next seq in the transaction that writes them), so a read made when it was n is still the answer
// while it is n, and is dropped the first time it is not. A read is kept the second time it is made
// (the first only notes it): keeping the many reads made once (a client catching up from a position of
// its own) cost each of them ~13% more in collector time than it ever saved.

import type { MessageRecord } from "../types.ts";

/** Bytes of kept reads, estimated from their rows' text (see `rowBytes`): 16 MiB. */
export const READS_MEMO_BYTES = 16 * 1024 * 1024;

/**
 * What a row is counted as, besides its text columns: ids, numbers and the object around them. Measured:
 * 16 MiB of estimate held 16.0 MiB of heap, in records of ~45-character messages.
 */
const ROW_OVERHEAD = 400;
/** What a read made once is counted as (its name, noted), besides the name's length. */
const NOTED_BYTES = 64;

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

function freeze(record: MessageRecord) {
  Object.freeze(record.attachments);
  Object.freeze(record.reactions);
  if (record.envelope) Object.freeze(record.envelope);
  Object.freeze(record);
}

interface Conversation {
  /** The conversation's last_seq when every read below was made. */
  lastSeq: number;
  /** What was read (the query and its arguments, as the caller names it) -> its records; null: read once. */
  reads: Map<string, readonly MessageRecord[] | null>;
  bytes: number;
}

export class ReadsMemo {
  /** By conversation id, least recently used first. */
  private conversations = new Map<string, Conversation>();
  private bytes = 0;

  constructor(private maxBytes = READS_MEMO_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1)
      throw new Error("ReadsMemo: maxBytes must be a positive integer");
  }

  /** Bytes held, as estimated. */
  get heldBytes() {
    return this.bytes;
  }

  /** The kept read, if the conversation's last_seq is still `lastSeq`; a conversation that moved is dropped. */
  get(conversationId: string, lastSeq: number, read: string): readonly MessageRecord[] | undefined {
    const known = this.conversations.get(conversationId);
    if (!known) return undefined;
    if (known.lastSeq !== lastSeq) {
      this.drop(conversationId, known);
      return undefined;
    }
    const records = known.reads.get(read) ?? undefined;
    if (records) {
      // Most recently used: to the end of the eviction order.
      this.conversations.delete(conversationId);
      this.conversations.set(conversationId, known);
    }
    return records;
  }

  /**
   * A read made when the conversation's last_seq was `lastSeq` (read before it: a write committed in
   * between only makes the read newer than its `lastSeq`, and last_seq never returns to that value): kept
   * if it was made before at that last_seq, only noted otherwise.
   */
  set(
    conversationId: string,
    lastSeq: number,
    read: string,
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
    const noted = known.reads.get(read);
    if (noted) return;
    const added = noted === null ? bytes : NOTED_BYTES + read.length;
    // Shared by every caller from here on: frozen, so that a caller changing one throws instead of
    // changing what the others are told.
    if (noted === null) for (const record of records) freeze(record);
    known.reads.set(read, noted === null ? records : null);
    known.bytes += added;
    this.bytes += added;
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
