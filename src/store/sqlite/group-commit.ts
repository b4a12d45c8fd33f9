// Group commit: writes that arrive in the same turn of the event loop share one transaction, so the
// commit (its WAL writes and its fsync) is paid once per batch, not once per write. Every caller still
// hears back only after the commit that holds its write.

import type { Database } from "bun:sqlite";

/** Writes per transaction, at most (see below). */
export const GROUP_COMMIT_MAX = 1000;

/**
 * `write` runs inside the batch's transaction and must be synchronous. A batch holds at most `maxBatch`
 * writes: under a flood (10,000 appends in flight in the bench's dms) one transaction of everything held
 * the event loop for ~250 ms; the rest waits for the next turn, after the sockets have had theirs. If a
 * write throws, the batch is rolled back and each write retried in a transaction of its own, so one bad
 * write (a taken username, a deleted conversation) fails alone. `afterCommit` runs after each batch.
 */
export function groupCommit<A, R>(
  db: Database,
  write: (arg: A) => R,
  options: { maxBatch?: number; afterCommit?: () => void } = {},
): (arg: A) => Promise<R> {
  const maxBatch = options.maxBatch ?? GROUP_COMMIT_MAX;
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new Error("groupCommit: maxBatch must be a positive integer");
  const all = db.transaction((args: A[]) => args.map(write)).immediate;
  const one = db.transaction(write).immediate;
  const pending: { arg: A; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  const flush = () => {
    const batch = pending.splice(0, maxBatch);
    if (pending.length > 0) setImmediate(flush);
    try {
      const results = all(batch.map((p) => p.arg));
      for (const [i, p] of batch.entries()) p.resolve(results[i] as R);
    } catch {
      for (const p of batch) {
        try {
          p.resolve(one(p.arg));
        } catch (err) {
          p.reject(err);
        }
      }
    }
    options.afterCommit?.();
  };
  return (arg) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ arg, resolve, reject });
      if (pending.length === 1) setImmediate(flush);
    });
}
