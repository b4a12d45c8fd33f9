// Magic-link tokens and sign-in lockouts on SQLite.

import type { Database } from "bun:sqlite";
import type { LockoutsRepo, MagicLinkRecord, MagicLinksRepo } from "../types.ts";
import { bind } from "./schema.ts";

export function sqliteAuthRepos(db: Database): { magicLinks: MagicLinksRepo; lockouts: LockoutsRepo } {
  const insertLink = db.query(
    `INSERT INTO magic_links (hash, user_id, email, created_at, expires_at, used_at)
     VALUES ($hash, $user_id, $email, $created_at, $expires_at, $used_at)`,
  );
  const useLink = db.query<MagicLinkRecord, [number, string, number]>(
    `UPDATE magic_links SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING *`,
  );
  const purgeLinks = db.query("DELETE FROM magic_links WHERE expires_at < ?");
  // No index on user_id: the table holds the links of the last day at most (add() purges the rest).
  const revokeLinks = db.query("UPDATE magic_links SET used_at = ? WHERE user_id = ? AND used_at IS NULL");

  const insertFailure = db.query("INSERT INTO login_failures (key, at) VALUES (?, ?)");
  const countFailures = db.query<{ n: number }, [string, number]>(
    "SELECT COUNT(*) AS n FROM login_failures WHERE key = ? AND at >= ?",
  );
  const purgeFailures = db.query("DELETE FROM login_failures WHERE key = ? AND at < ?");
  const clearFailures = db.query("DELETE FROM login_failures WHERE key = ?");
  const upsertLock = db.query(
    "INSERT INTO lockouts (key, until) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET until = excluded.until",
  );
  const lockOf = db.query<{ until: number }, [string, number]>(
    "SELECT until FROM lockouts WHERE key = ? AND until > ?",
  );

  const recordFailure = db.transaction((key: string, at: number, since: number) => {
    purgeFailures.run(key, since);
    insertFailure.run(key, at);
    return countFailures.get(key, since)?.n ?? 0;
  });

  return {
    magicLinks: {
      async add(link) {
        // Expired links are useless; dropping them here keeps the table small without a timer.
        purgeLinks.run(link.created_at - 24 * 3600_000);
        insertLink.run(bind(link));
      },
      async consume(hash, now) {
        return useLink.get(now, hash, now);
      },
      async revokeForUser(userId, now) {
        revokeLinks.run(now, userId);
      },
    },
    lockouts: {
      async recordFailure(key, at, since) {
        return recordFailure(key, at, since);
      },
      async clearFailures(key) {
        clearFailures.run(key);
      },
      async lock(key, until) {
        upsertLock.run(key, until);
      },
      async lockedUntil(key, now) {
        return lockOf.get(key, now)?.until ?? null;
      },
    },
  };
}
