// Who may use a DATA_DIR: one process alone (no shared broker), or any number that share one Redis
// under one prefix. A process alone makes every change to the store itself, so it trusts what it knows
// for longer; a second process over the same file, unheard of, would make it wrong (stale membership,
// lost fanout). So would two that share the file but not the broker: each one's live traffic would stay
// on its own Redis (or prefix), and the other's sockets would never hear it.

import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../config.ts";

/** `alone`: this process is the only one (no REDIS_URL). `shared`: every process on the DATA_DIR shares a Redis. */
export type DataDirMode = "alone" | "shared";

export interface DataDirLock {
  readonly mode: DataDirMode;
  release(): void;
}

export const LOCK_FILE = "parley.lock";
/** `parley.broker-<hash of the broker>.lock`: held (read) by every process in `shared` with that broker. */
const BROKER_LOCK = /^parley\.broker-[0-9a-f]{16}\.lock$/;

/** This host's own names for itself, written as the one the lock file's name is made of. */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Which broker a process in `shared` uses, as a name for its lock file: Redis's host, port and database
 * (not its credentials) and the prefix. `localhost`, `127.0.0.1` and `[::1]` name one host; other
 * spellings of one Redis that differ (a name and its address) count as two: such processes are refused,
 * which is the safe side.
 */
export function brokerLockFile(redisUrl: string, prefix: string): string {
  let where = redisUrl;
  try {
    const url = new URL(redisUrl);
    const host = url.hostname.toLowerCase();
    // The database as ioredis reads it: the path, else a `db` parameter, else 0.
    const db = Number.parseInt(url.pathname.slice(1) || url.searchParams.get("db") || "0", 10) || 0;
    where = `${LOOPBACK.has(host) ? "127.0.0.1" : host}:${url.port || "6379"}/${db}`;
  } catch {}
  const hash = createHash("sha256").update(`${where} ${prefix}`).digest("hex").slice(0, 16);
  return `parley.broker-${hash}.lock`;
}

/** How long to wait for a broker's file that another process may be looking at (a look lasts microseconds). */
const LOOK_MS = 250;

const SHARE_HOW =
  "Processes that share a DATA_DIR must all set REDIS_URL to one Redis, with one REDIS_PREFIX";

/**
 * Takes DATA_DIR's lock, or throws a ConfigError naming the conflict. The lock is a file lock held by an
 * SQLite connection to `parley.lock` in exclusive locking mode: `alone` holds its write lock, `shared`
 * its read lock, which others in `shared` may hold too. A process in `shared` also holds the read lock of
 * its broker's file (`brokerFile`, from brokerLockFile) and refuses to start while another broker's file
 * is held. The system drops the locks when the process ends, however it ends, so a crash leaves nothing
 * to clean up (a broker's file stays, unlocked, and means nothing then).
 */
export function lockDataDir(
  dir: string,
  mode: DataDirMode,
  brokerFile = brokerLockFile("", ""),
): DataDirLock {
  const main = take(dir, LOCK_FILE, mode === "alone" ? "write" : "read", () =>
    mode === "alone"
      ? `DATA_DIR ${dir} is in use by another Parley process. ${SHARE_HOW} (README: Scale-out)`
      : `DATA_DIR ${dir} is in use by a Parley process without REDIS_URL. ${SHARE_HOW} (README: Scale-out)`,
  );
  const held = [main];
  const release = () => {
    for (const db of held.splice(0)) db.close();
  };
  if (mode === "shared") {
    const otherBroker = () =>
      `DATA_DIR ${dir} is in use by a Parley process with another REDIS_URL or REDIS_PREFIX. ${SHARE_HOW} (README: Scale-out)`;
    try {
      // Taken before the others are looked at: two starting at once, each with its own broker, find each
      // other's file held, and both refuse. A look is a write lock taken and dropped at once; another
      // process's look at a file is waited for (LOOK_MS), so two of one broker starting together while an
      // old file of another lies there do not refuse each other.
      held.push(take(dir, brokerFile, "read", otherBroker, LOOK_MS));
      for (const other of readdirSync(dir)) {
        if (other !== brokerFile && BROKER_LOCK.test(other))
          take(dir, other, "write", otherBroker, LOOK_MS).close();
      }
    } catch (err) {
      release();
      throw err;
    }
  }
  return { mode, release };
}

/**
 * An SQLite connection to `dir/name` holding its read or write lock, waiting up to `waitMs` for it; a
 * ConfigError from `taken()` if it cannot.
 */
function take(dir: string, name: string, lock: "read" | "write", taken: () => string, waitMs = 0): Database {
  let db: Database;
  try {
    mkdirSync(dir, { recursive: true });
    db = new Database(join(dir, name), { create: true });
  } catch (err) {
    throw new ConfigError(`DATA_DIR ${dir}: cannot open ${name} (${(err as Error).message})`);
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${waitMs}`);
    // Locks taken are kept until the connection closes, not released at the end of each transaction.
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    if (lock === "write") {
      db.exec("BEGIN EXCLUSIVE");
      db.exec("COMMIT");
    } else {
      db.query("SELECT count(*) FROM sqlite_master").get();
    }
  } catch (err) {
    db.close();
    if (!(err instanceof Error && /locked|busy/i.test(err.message)))
      throw new ConfigError(`DATA_DIR ${dir}: cannot lock ${name} (${(err as Error).message})`);
    throw new ConfigError(taken());
  }
  return db;
}
