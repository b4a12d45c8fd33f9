// Device sessions and their rotating refresh tokens on MongoDB.

import type { Filter, WithId } from "mongodb";
import type { RefreshTokenRecord, RefreshTokensRepo, SessionRecord, SessionsRepo } from "../types.ts";
import type { Collections, RefreshTokenDoc, SessionDoc } from "./schema.ts";

// A session from before signed_in_by was kept is taken as opened by password: the one that may not set a
// first password without the current one.
const toSession = ({ _id, signed_in_by, ...session }: SessionDoc): SessionRecord => ({
  id: _id,
  ...session,
  signed_in_by: signed_in_by ?? "password",
});
const toToken = ({ _id: _, ...token }: WithId<RefreshTokenDoc>): RefreshTokenRecord => token;

export function mongoSessionRepos({ sessions, refreshTokens }: Collections): {
  sessions: SessionsRepo;
  refreshTokens: RefreshTokensRepo;
} {
  return {
    sessions: {
      async create(session) {
        const { id, ...rest } = session;
        await sessions.insertOne({ _id: id, ...rest });
      },
      async byId(id) {
        const doc = await sessions.findOne({ _id: id });
        return doc && toSession(doc);
      },
      async listActive(userId, now) {
        const docs = await sessions
          .find({ user_id: userId, revoked_at: null, expires_at: { $gt: now } })
          .sort({ created_at: -1, _id: -1 })
          .toArray();
        return docs.map(toSession);
      },
      async touch(id, now) {
        // Only forward: a late, slower request must not move last_seen_at back.
        await sessions.updateOne({ _id: id, last_seen_at: { $lt: now } }, { $set: { last_seen_at: now } });
      },
      async revoke(id, now) {
        const result = await sessions.updateOne({ _id: id, revoked_at: null }, { $set: { revoked_at: now } });
        return result.matchedCount === 1;
      },
      async revokeAllForUser(userId, now, exceptId) {
        const live: Filter<SessionDoc> = { user_id: userId, revoked_at: null };
        if (exceptId !== undefined) live._id = { $ne: exceptId };
        // One atomic update per session (a user has a handful): the ids returned are exactly those this
        // call revoked, and a session revoked meanwhile by another request keeps its own revocation.
        const ids: string[] = [];
        for (;;) {
          const doc = await sessions.findOneAndUpdate(
            live,
            { $set: { revoked_at: now } },
            { projection: { _id: 1 } },
          );
          if (!doc) return ids;
          ids.push(doc._id);
        }
      },
    },
    refreshTokens: {
      async add(token) {
        // A copy: insertOne writes the generated _id into the object it is given.
        await refreshTokens.insertOne({ ...token });
      },
      async spend(hash, now) {
        // One atomic update decides the race: only the one that finds spent_at still null wins.
        const spent = await refreshTokens.findOneAndUpdate(
          { hash, spent_at: null },
          { $set: { spent_at: now } },
          { returnDocument: "after" },
        );
        if (spent) return { status: "ok", token: toToken(spent) };
        const token = await refreshTokens.findOne({ hash });
        return token ? { status: "spent", token: toToken(token) } : { status: "missing" };
      },
    },
  };
}
