// Mailed tokens (magic links, email verifications) and sign-in lockouts on MongoDB.

import type { Collection, WithId } from "mongodb";
import type { LockoutsRepo, MailedTokenRecord, MailedTokensRepo } from "../types.ts";
import type { Collections, MailedTokenDoc } from "./schema.ts";

const toToken = ({ _id: _, expires_at, ...token }: WithId<MailedTokenDoc>): MailedTokenRecord => ({
  ...token,
  expires_at: expires_at.getTime(),
});

/** The tokens of one kind, each in its own collection (magic_links, email_verifications). */
function mongoMailedTokens(tokens: Collection<MailedTokenDoc>): MailedTokensRepo {
  return {
    async add(token) {
      // Expired tokens go by the TTL index on expires_at (see schema.ts).
      await tokens.insertOne({ ...token, expires_at: new Date(token.expires_at) });
    },
    async consume(hash, now) {
      const token = await tokens.findOneAndUpdate(
        { hash, used_at: null, expires_at: { $gt: new Date(now) } },
        { $set: { used_at: now } },
        { returnDocument: "after" },
      );
      return token && toToken(token);
    },
    async revokeForUser(userId, now) {
      await tokens.updateMany({ user_id: userId, used_at: null }, { $set: { used_at: now } });
    },
  };
}

export function mongoAuthRepos({ magicLinks, emailVerifications, loginFailures, lockouts }: Collections): {
  magicLinks: MailedTokensRepo;
  emailVerifications: MailedTokensRepo;
  lockouts: LockoutsRepo;
} {
  return {
    magicLinks: mongoMailedTokens(magicLinks),
    emailVerifications: mongoMailedTokens(emailVerifications),
    lockouts: {
      async recordFailure(key, at, since) {
        // Failures older than the window never count again; dropping them keeps the collection small.
        await loginFailures.deleteMany({ key, at: { $lt: since } });
        await loginFailures.insertOne({ key, at });
        return loginFailures.countDocuments({ key, at: { $gte: since } });
      },
      async clearFailures(key) {
        await loginFailures.deleteMany({ key });
      },
      async lock(key, until) {
        await lockouts.updateOne({ key }, { $set: { until } }, { upsert: true });
      },
      async lockedUntil(key, now) {
        const lock = await lockouts.findOne({ key, until: { $gt: now } });
        return lock ? lock.until : null;
      },
    },
  };
}
