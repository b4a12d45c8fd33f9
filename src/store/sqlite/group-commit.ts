// Group commit: writes that arrive in the same turn of the event loop share one transaction, so the
// commit (its WAL writes and its fsync) is paid once per batch, not once per write. Every caller still
// hears back only after the commit that holds its write.

import type { Database } from "bun:sqlite";
import { storageUnavailable } from "../../lib/errors.ts";
import { isBusy, withoutBusyWait } from "./busy.ts";

/** Since when, and with what, one kind of write has been failing for want of storage. */
export interface WriteFailure {
  code: string;
  since: number;
}
/**
 * A connection's group commits (one per kind of write: appends, changes, receipts…) whose last batch
 * failed for want of storage (disk full, I/O error, the file locked past the wait): the store's ping
 * reads it, so that /ready says so while writes fail although reads still answer. A kind's next commit
 * takes it out. Kept per kind: on a full disk a small write that fits in a page already there may
 * succeed while every append fails.
 */
const failingOf = new WeakMap<Database, Map<object, WriteFailure>>();
export function writeFailures(db: Database): Map<object, WriteFailure> {
  const known = failingOf.get(db);
  if (known) return known;
  const failing = new Map<object, WriteFailure>();
  failingOf.set(db, failing);
  return failing;
}
/** Writes per transaction, at most (see below). */
export const GROUP_COMMIT_MAX = 1000;
/** How long a batch may keep finding the file locked by another process before its writes fail. */
export const GROUP_COMMIT_BUSY_MS = 10_000;

/**
 * `write` runs inside the batch's transaction and must be synchronous. A batch holds at most `maxBatch`
 * writes: under a flood (10,000 appends in flight in the bench's dms) one transaction of everything held
 * the event loop for ~250 ms; the rest waits for the next turn, after the sockets have had theirs. If a
 * write throws, the batch is rolled back and each write retried in a transaction of its own, so one bad
 * write (a taken username, a deleted conversation) fails alone. `afterCommit` runs after each batch.
 *
 * Another process may hold the file's write lock (nodes sharing it). SQLite's busy handler would wait for
 * it with the event loop stopped, up to busy_timeout, and then every write of the batch would wait again
 * alone. Here the batch asks without waiting and, while the lock is taken, tries again a millisecond or
 * two later with the event loop free, for up to `busyMs`; after that its writes fail with SQLITE_BUSY.
 */
export function groupCommit<A, R>(
  db: Database,
  write: (arg: A) => R,
  options: { maxBatch?: number; afterCommit?: () => void; busyMs?: number } = {},
): (arg: A) => Promise<R> {
  const maxBatch = options.maxBatch ?? GROUP_COMMIT_MAX;
  const busyMs = options.busyMs ?? GROUP_COMMIT_BUSY_MS;
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new Error("groupCommit: maxBatch must be a positive integer");
  const all = db.transaction((args: A[]) => args.map(write)).immediate;
  const one = db.transaction(write).immediate;
  const withoutWaiting = withoutBusyWait(db);
  const failing = writeFailures(db);
  const kind = {};

  const pending: { arg: A; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  /** When the batch at the head of `pending` first found the file locked; 0 when it has not. */
  let busySince = 0;
  /** A flush is scheduled (a turn's end, or a retry after the lock was taken). */
  let scheduled = false;
  const schedule = (later: boolean) => {
    scheduled = true;
    if (later) setTimeout(flush, 1 + Math.random());
    else setImmediate(flush);
  };

  function flush() {
    scheduled = false;
    const batch = pending.splice(0, maxBatch);
    if (batch.length === 0) return;
    let results: R[] | undefined;
    let failure: unknown;
    try {
      results = withoutWaiting(() => all(batch.map((p) => p.arg)));
    } catch (err) {
      failure = err;
    }
    if (failure !== undefined && isBusy(failure)) {
      const now = Date.now();
      busySince ||= now;
      if (now - busySince < busyMs) {
        // Back at the head, in order; what arrives meanwhile joins the next try.
        pending.unshift(...batch);
        return schedule(true);
      }
    }
    busySince = 0;
    if (pending.length > 0) schedule(false);
    // Storage that fails every write of a batch marks the connection's writes failing; any commit clears it.
    let committed = results !== undefined;
    let down = committed ? null : storageUnavailable(failure);
    if (results) {
      for (const [i, p] of batch.entries()) p.resolve(results[i] as R);
    } else if (isBusy(failure)) {
      for (const p of batch) p.reject(failure);
    } else {
      for (const p of batch) {
        try {
          p.resolve(withoutWaiting(() => one(p.arg)));
          committed = true;
        } catch (err) {
          down ??= storageUnavailable(err);
          p.reject(err);
        }
      }
    }
    if (committed || !down) failing.delete(kind);
    else if (!failing.has(kind)) failing.set(kind, { code: down, since: Date.now() });
    if (!committed && isBusy(failure)) return;
    options.afterCommit?.();
  }

  return (arg) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ arg, resolve, reject });
      if (!scheduled) schedule(false);
    });
}
