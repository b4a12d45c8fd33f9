// The embedded store: one SQLite file under DATA_DIR (WAL), zero set-up. bun:sqlite is synchronous;
// the port is async so that both adapters share one interface.

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { ConfigError } from "../../config.ts";
import type { Store } from "../types.ts";
import { sqliteAuthRepos } from "./auth.ts";
import { sqliteConversations } from "./conversations.ts";
import { writeFailures } from "./group-commit.ts";
import { sqliteMessages } from "./messages.ts";
import { applyMigration, MIGRATIONS, type Migration } from "./schema.ts";
import { sqliteSearchIndex } from "./search-index.ts";
import { sqliteSessionRepos } from "./sessions.ts";
import { sqliteUsers } from "./users.ts";

export interface SqliteStoreOptions {
  /**
   * The most pages the file may grow to (SQLite's max_page_count): a write past it fails as on a full
   * disk (SQLITE_FULL). Unset, SQLite's own bound. Tests meet a full disk with it.
   */
  maxPageCount?: number;
  /**
   * Upgrade a file older than this release (the default). False refuses it instead, for a process that
   * must not upgrade the file under a running server (the admin CLI).
   */
  migrate?: boolean;
}

/** Opens (and migrates) the database at `path`; ":memory:" for a throwaway one. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL");
  // FULL: a commit is on disk before anyone is told (acks promise durability); group commit in
  // messages.ts keeps the fsync off the per-message cost under load.
  db.exec("PRAGMA synchronous = FULL");
  db.exec("PRAGMA busy_timeout = 5000");
  // 64 MiB of page cache (the default is 2 MiB): the index leaves of every active conversation stay in
  // memory, so appends under load re-read fewer pages (bench/RESULTS.md: about 5-10% of append cost).
  db.exec("PRAGMA cache_size = -65536");
  // Checkpoint past 10,000 WAL pages (~40 MiB) instead of 1,000: the pages a busy conversation rewrites
  // in commit after commit (its index leaves) are copied into the database once per checkpoint, not ten
  // times, and the checkpoint's pause on the event loop comes a tenth as often (bench/LIMITS.md).
  db.exec("PRAGMA wal_autocheckpoint = 10000");
  db.exec("PRAGMA foreign_keys = ON");
  migrate(db, options.migrate ?? true);
  if (options.maxPageCount !== undefined)
    db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.trunc(options.maxPageCount))}`);
  const { sessions, refreshTokens } = sqliteSessionRepos(db);
  const { magicLinks, emailVerifications, lockouts } = sqliteAuthRepos(db);
  const searchIndex = sqliteSearchIndex(db);
  return {
    kind: "sqlite",
    users: sqliteUsers(db),
    sessions,
    refreshTokens,
    magicLinks,
    emailVerifications,
    lockouts,
    conversations: sqliteConversations(db),
    messages: sqliteMessages(db, searchIndex),
    async ping() {
      db.query("SELECT 1").get();
      const [failing] = writeFailures(db).values();
      if (failing) {
        const since = new Date(failing.since).toISOString();
        throw new Error(`writes failing since ${since} (${failing.code})`);
      }
    },
    async close() {
      searchIndex.close();
      db.close();
    },
  };
}

function migrate(db: Database, upgrade: boolean) {
  const row = db.query<{ user_version: number }, []>("PRAGMA user_version").get();
  const from = row?.user_version ?? 0;
  // A file a later release has upgraded: this one would misread it, and writing it could spoil it.
  if (from > MIGRATIONS.length) {
    db.close();
    throw new ConfigError(
      `DATA_DIR: ${db.filename} is at schema version ${from}, newer than this release knows ` +
        `(${MIGRATIONS.length}): run the release that wrote it, or restore a backup made for this one`,
    );
  }
  if (from < MIGRATIONS.length && !upgrade) {
    db.close();
    throw new ConfigError(
      `DATA_DIR: ${db.filename} is at schema version ${from}, older than this release's ` +
        `(${MIGRATIONS.length}): start this release's server once (it upgrades the file), then try again`,
    );
  }
  for (let v = from; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      applyMigration(db, MIGRATIONS[v] as Migration);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    })();
  }
}
