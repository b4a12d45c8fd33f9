// Mailed tokens (magic links, email verifications) and sign-in lockouts on SQLite.

import type { Database } from "bun:sqlite";
import type { LockoutsRepo, MailedTokenRecord, MailedTokensRepo } from "../types.ts";
import { bind } from "./schema.ts";

/** The tokens of one kind, each in its own table of the same columns (magic_links, email_verifications). */
function sqliteMailedTokens(db: Database, table: "magic_links" | "email_verifications"): MailedTokensRepo {
  const insert = db.query(
    `INSERT INTO ${table} (hash, user_id, email, created_at, expires_at, used_at)
     VALUES ($hash, $user_id, $email, $created_at, $expires_at, $used_at)`,
  );
  const use = db.query<MailedTokenRecord, [number, string, number]>(
    `UPDATE ${table} SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING *`,
  );
  const purge = db.query(`DELETE FROM ${table} WHERE expires_at < ?`);
  // No index on user_id: magic links are revoked by user, and their table holds the links of the last day
  // at most (add() purges the rest); verifications are never revoked.
  const revoke = db.query(`UPDATE ${table} SET used_at = ? WHERE user_id = ? AND used_at IS NULL`);
  return {
    async add(token) {
      // Tokens expired a day ago are useless; dropping them here keeps the table small without a timer.
      purge.run(token.created_at - 24 * 3600_000);
      insert.run(bind(token));
    },
    async consume(hash, now) {
      return use.get(now, hash, now);
    },
    async revokeForUser(userId, now) {
      revoke.run(now, userId);
    },
  };
}

export function sqliteAuthRepos(db: Database): {
  magicLinks: MailedTokensRepo;
  emailVerifications: MailedTokensRepo;
  lockouts: LockoutsRepo;
} {
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
    magicLinks: sqliteMailedTokens(db, "magic_links"),
    emailVerifications: sqliteMailedTokens(db, "email_verifications"),
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
