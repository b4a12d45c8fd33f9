// Magic-link tokens and sign-in lockouts on MongoDB.

import type { WithId } from "mongodb";
import type { LockoutsRepo, MagicLinkRecord, MagicLinksRepo } from "../types.ts";
import type { Collections, MagicLinkDoc } from "./schema.ts";

const toLink = ({ _id: _, expires_at, ...link }: WithId<MagicLinkDoc>): MagicLinkRecord => ({
  ...link,
  expires_at: expires_at.getTime(),
});

export function mongoAuthRepos({ magicLinks, loginFailures, lockouts }: Collections): {
  magicLinks: MagicLinksRepo;
  lockouts: LockoutsRepo;
} {
  return {
    magicLinks: {
      async add(link) {
        // Expired links go by the TTL index on expires_at (see schema.ts).
        await magicLinks.insertOne({ ...link, expires_at: new Date(link.expires_at) });
      },
      async consume(hash, now) {
        const link = await magicLinks.findOneAndUpdate(
          { hash, used_at: null, expires_at: { $gt: new Date(now) } },
          { $set: { used_at: now } },
          { returnDocument: "after" },
        );
        return link && toLink(link);
      },
      async revokeForUser(userId, now) {
        await magicLinks.updateMany({ user_id: userId, used_at: null }, { $set: { used_at: now } });
      },
    },
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
