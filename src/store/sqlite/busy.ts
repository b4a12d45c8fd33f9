// Another process may hold the file's write lock (nodes on one machine sharing it). SQLite's busy handler
// waits for it inside the call, with the event loop stopped; the writes that run on their own schedule
// (group commit, search indexing) ask without waiting instead and try again later themselves. Both go
// through withPragma, which search indexing also uses to commit without an fsync.

import type { Database } from "bun:sqlite";

export const isBusy = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
};

/**
 * Runs a function with the connection's busy handler off, so that a locked file throws SQLITE_BUSY at once,
 * and puts the connection's own wait (read once, as set at open) back after.
 */
export const withoutBusyWait = (db: Database) => withPragma(db, "busy_timeout", 0);

/**
 * Runs a function with a connection setting (a pragma that takes an integer) at `value`, and puts the
 * connection's own value, read once now, back after, whatever the function does.
 */
export function withPragma(db: Database, pragma: string, value: number): <T>(run: () => T) => T {
  const own = Math.trunc(Number(db.query(`PRAGMA ${pragma}`).values()[0]?.[0] ?? 0));
  // Executed each time, not prepared: SQLite applies these pragmas when it compiles the statement.
  return (run) => {
    db.exec(`PRAGMA ${pragma} = ${value}`);
    try {
      return run();
    } finally {
      db.exec(`PRAGMA ${pragma} = ${own}`);
    }
  };
}
