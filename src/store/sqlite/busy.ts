// Another process may hold the file's write lock (nodes on one machine sharing it). SQLite's busy handler
// waits for it inside the call, with the event loop stopped; the writes that run on their own schedule
// (group commit, search indexing) ask without waiting instead and try again later themselves.

import type { Database } from "bun:sqlite";

export const isBusy = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
};

/**
 * Runs a function with the connection's busy handler off, so that a locked file throws SQLITE_BUSY at once,
 * and puts the connection's own wait (read once, as set at open) back after.
 */
export function withoutBusyWait(db: Database): <T>(run: () => T) => T {
  const waitMs = Math.trunc(db.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()?.timeout ?? 0);
  // Executed each time, not prepared: SQLite applies this pragma when it compiles the statement.
  return (run) => {
    db.exec("PRAGMA busy_timeout = 0");
    try {
      return run();
    } finally {
      db.exec(`PRAGMA busy_timeout = ${waitMs}`);
    }
  };
}
