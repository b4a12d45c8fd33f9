// Device sessions and their rotating refresh tokens on SQLite.

import type { Database } from "bun:sqlite";
import type { RefreshTokenRecord, RefreshTokensRepo, SessionRecord, SessionsRepo } from "../types.ts";
import { groupCommit } from "./group-commit.ts";
import { bind } from "./schema.ts";

export function sqliteSessionRepos(db: Database): {
  sessions: SessionsRepo;
  refreshTokens: RefreshTokensRepo;
} {
  const insertSession = db.query(
    `INSERT INTO sessions (id, user_id, device_name, user_agent, ip, created_at, last_seen_at, expires_at,
       revoked_at, signed_in_by)
     VALUES ($id, $user_id, $device_name, $user_agent, $ip, $created_at, $last_seen_at, $expires_at, $revoked_at,
       $signed_in_by)`,
  );
  const byId = db.query<SessionRecord, [string]>("SELECT * FROM sessions WHERE id = ?");
  const listActive = db.query<SessionRecord, [string, number]>(
    `SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
     ORDER BY created_at DESC, id DESC`,
  );
  const touch = db.query<never, [number, string, number]>(
    "UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
  );
  // Group commit (group-commit.ts): after a restart every reconnecting session is touched at once (its
  // last_seen_at is written at most once a minute), one transaction per turn instead of an fsync each.
  const touchAll = groupCommit(db, ({ id, now }: { id: string; now: number }) => {
    touch.run(now, id, now);
  });
  const revoke = db.query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
  const liveOfUser = db.query<{ id: string }, [string, string]>(
    "SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND id != ?",
  );

  const insertToken = db.query(
    `INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, expires_at, spent_at)
     VALUES ($hash, $session_id, $user_id, $created_at, $expires_at, $spent_at)`,
  );
  const tokenByHash = db.query<RefreshTokenRecord, [string]>("SELECT * FROM refresh_tokens WHERE hash = ?");
  const spendToken = db.query("UPDATE refresh_tokens SET spent_at = ? WHERE hash = ? AND spent_at IS NULL");

  const revokeAll = db.transaction((userId: string, now: number, exceptId: string) => {
    const ids = liveOfUser.all(userId, exceptId).map((r) => r.id);
    for (const id of ids) revoke.run(now, id);
    return ids;
  });

  return {
    sessions: {
      async create(session) {
        insertSession.run(bind(session));
      },
      async byId(id) {
        return byId.get(id);
      },
      async listActive(userId, now) {
        return listActive.all(userId, now);
      },
      async touch(id, now) {
        await touchAll({ id, now });
      },
      async revoke(id, now) {
        return revoke.run(now, id).changes === 1;
      },
      async revokeAllForUser(userId, now, exceptId = "") {
        return revokeAll(userId, now, exceptId);
      },
    },
    refreshTokens: {
      async add(token) {
        insertToken.run(bind(token));
      },
      async spend(hash, now) {
        // One statement decides the race: only the UPDATE that flips spent_at from NULL wins.
        const changed = spendToken.run(now, hash).changes === 1;
        const token = tokenByHash.get(hash);
        if (!token) return { status: "missing" };
        return changed ? { status: "ok", token } : { status: "spent", token };
      },
    },
  };
}
