// Who may use a DATA_DIR: one process alone (no shared broker), or any number that share a Redis.
// A process alone makes every change to the store itself, so it trusts what it knows for longer; a
// second process over the same file, unheard of, would make it wrong (stale membership, lost fanout).

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../config.ts";

/** `alone`: this process is the only one (no REDIS_URL). `shared`: every process on the DATA_DIR shares a Redis. */
export type DataDirMode = "alone" | "shared";

export interface DataDirLock {
  readonly mode: DataDirMode;
  release(): void;
}

export const LOCK_FILE = "parley.lock";

/**
 * Takes DATA_DIR's lock, or throws a ConfigError naming the conflict. The lock is a file lock held by an
 * SQLite connection to `parley.lock` in exclusive locking mode: `alone` holds its write lock, `shared`
 * its read lock, which others in `shared` may hold too. The system drops it when the process ends,
 * however it ends, so a crash leaves nothing to clean up.
 */
export function lockDataDir(dir: string, mode: DataDirMode): DataDirLock {
  let db: Database;
  try {
    mkdirSync(dir, { recursive: true });
    db = new Database(join(dir, LOCK_FILE), { create: true });
  } catch (err) {
    throw new ConfigError(`DATA_DIR ${dir}: cannot open ${LOCK_FILE} (${(err as Error).message})`);
  }
  try {
    db.exec("PRAGMA busy_timeout = 0");
    // Locks taken are kept until the connection closes, not released at the end of each transaction.
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    if (mode === "alone") {
      db.exec("BEGIN EXCLUSIVE");
      db.exec("COMMIT");
    } else {
      db.query("SELECT count(*) FROM sqlite_master").get();
    }
  } catch (err) {
    db.close();
    if (!(err instanceof Error && /locked|busy/i.test(err.message)))
      throw new ConfigError(`DATA_DIR ${dir}: cannot lock ${LOCK_FILE} (${(err as Error).message})`);
    throw new ConfigError(
      mode === "alone"
        ? `DATA_DIR ${dir} is in use by another Parley process. Processes that share a DATA_DIR must all set ` +
            "REDIS_URL to one Redis (README: Scale-out)"
        : `DATA_DIR ${dir} is in use by a Parley process without REDIS_URL. Processes that share a DATA_DIR ` +
            "must all set REDIS_URL to one Redis (README: Scale-out)",
    );
  }
  let held = true;
  return {
    mode,
    release() {
      if (held) db.close();
      held = false;
    },
  };
}
