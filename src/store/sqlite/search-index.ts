// Deferred full-text indexing: appends only write messages; rows above the search_state watermark are
// added to messages_fts in batches, off the append path, and search catches up before it queries.
// By hand: an FTS5 'rebuild' must set indexed_rowid to MAX(rowid) in the same transaction.

import type { Database } from "bun:sqlite";
import { withoutBusyWait, withPragma } from "./busy.ts";

export interface SearchIndexOptions {
  /** Rows per background run: one run blocks the event loop for about chunk × 2.5 µs. */
  chunk?: number;
  /** How long a small backlog waits, so that one run indexes many appends at once. */
  delayMs?: number;
  /** The longest wait between retries when runs keep failing. */
  maxBackoffMs?: number;
  /** Told about a failed background run (which is retried); search reports its own failures. */
  onError?: (err: unknown) => void;
}

export interface SearchIndex {
  /** After appends commit: index soon when a chunk is waiting, otherwise within delayMs. Never throws. */
  poke(): void;
  /**
   * Indexes every row committed before the call, a chunk at a time with the event loop free in between
   * (a large backlog, say after a crash, must not stall every socket), so a query that follows sees them.
   */
  catchUp(): Promise<void>;
  /** Stops the timers; no run starts afterwards. Call before closing the database. */
  close(): void;
}

/**
 * After messages were deleted (a conversation removed), in the same transaction: with the top rows gone
 * their rowids are free again, so the watermark comes down to the highest rowid left, and a reused rowid
 * is above it and gets indexed by the next run (an insert trigger did this per row before migration 5).
 */
export function afterMessagesDeleted(db: Database) {
  db.query(
    "UPDATE search_state SET indexed_rowid = MIN(indexed_rowid, (SELECT COALESCE(MAX(rowid), 0) FROM messages))",
  ).run();
}

export const SEARCH_INDEX_DEFAULTS = { chunk: 1000, delayMs: 200, maxBackoffMs: 60_000 };

export function sqliteSearchIndex(db: Database, options: SearchIndexOptions = {}): SearchIndex {
  const { chunk, delayMs, maxBackoffMs } = { ...SEARCH_INDEX_DEFAULTS, ...options };
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new Error("search index: chunk must be a positive integer");
  // Positive, so that the doubling backoff below cannot stay at zero and loop hot.
  if (!(delayMs > 0)) throw new Error("search index: delayMs must be positive");
  if (!(maxBackoffMs >= delayMs)) throw new Error("search index: maxBackoffMs must be at least delayMs");

  const state = db.query<{ indexed: number; top: number }, []>(
    `SELECT indexed_rowid AS indexed, COALESCE((SELECT MAX(rowid) FROM messages), 0) AS top
     FROM search_state WHERE id = 1`,
  );
  // What each message is indexed by: messages_search (schema.ts, migration 16) gives the copy of its text
  // with the characters of unspaced scripts set apart, where it has one, and its content otherwise.
  const indexRange = db.query<never, [number, number]>(
    `INSERT INTO messages_fts(rowid, content, conv) SELECT rid, content, conv FROM messages_search
     WHERE rid > ?1 AND rid <= ?2`,
  );
  const moveWatermark = db.query<never, [number]>("UPDATE search_state SET indexed_rowid = ?1 WHERE id = 1");

  const current = () => {
    const s = state.get();
    if (!s) throw new Error("search index: search_state has no row");
    return s;
  };
  /** Indexes up to `rows` rows past the watermark in one transaction; returns how many are left. */
  const indexChunk = db.transaction((rows: number) => {
    const s = current();
    // Nothing past the watermark (deleting the top rows lowers it: afterMessagesDeleted).
    if (s.top <= s.indexed) return 0;
    const to = Math.min(s.indexed + rows, s.top);
    indexRange.run(s.indexed, to);
    moveWatermark.run(to);
    return s.top - to;
  }).immediate;
  // The index and its watermark move in one transaction and can always be built again from the messages,
  // so their commit need not wait for the disk (synchronous = NORMAL: no fsync; checkpoints still sync).
  // A crash may lose it, whole, and the rows are indexed again; the next append's commit (FULL) syncs it
  // with its own. It was an fsync on the event loop every 1,000 messages: ~4% of the dms max rate
  // (bench/LIMITS.md). The connection's own setting is put back for every other write.
  const withoutFsync = withPragma(db, "synchronous", 1); // NORMAL
  const step = (rows: number) => withoutFsync(() => indexChunk(rows));

  // In the background a locked file (another process committing) is a failed run, retried later, not a
  // wait with the event loop stopped. A search's catch-up does wait: its caller needs the rows.
  const withoutWaiting = withoutBusyWait(db);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let armedMs = 0;
  let failures = 0;
  let closed = false;

  const arm = (ms: number) => {
    clearTimeout(timer);
    armedMs = ms;
    timer = setTimeout(run, ms);
    // Neither tests nor shutdown wait for it: a backlog left behind is picked up at the next open.
    timer.unref();
  };
  /** A failing run (disk full, busy file) retries with doubling waits instead of looping hot. */
  const fail = (err: unknown) => {
    failures++;
    arm(Math.min(delayMs * 2 ** failures, maxBackoffMs));
    options.onError?.(err);
  };
  function run() {
    timer = undefined;
    if (closed) return;
    let left: number;
    try {
      left = withoutWaiting(() => step(chunk));
    } catch (err) {
      fail(err);
      return;
    }
    failures = 0;
    if (left > 0) arm(0);
  }

  const poke = () => {
    // Already due now, or backing off after a failure: nothing to decide.
    if (closed || failures > 0 || (timer && armedMs === 0)) return;
    let n: number;
    try {
      const s = current();
      n = s.top - s.indexed;
    } catch (err) {
      fail(err);
      return;
    }
    if (n >= chunk) arm(0);
    else if (n > 0 && !timer) arm(delayMs);
  };

  poke(); // a backlog left by a crash
  return {
    poke,
    async catchUp() {
      const target = current().top;
      for (;;) {
        const s = current();
        // Rows deleted meanwhile (a conversation removed) can lower the top below the target.
        if (s.indexed >= Math.min(target, s.top)) break;
        step(chunk);
        if (s.indexed + chunk < target) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      failures = 0;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
