// Users on MongoDB.

import { type Filter, MongoServerError } from "mongodb";
import { nameKey } from "../../lib/text.ts";
import {
  DuplicateError,
  type UserCondition,
  type UserPatch,
  type UserRecord,
  type UsersRepo,
} from "../types.ts";
import type { Collections, UserDoc } from "./schema.ts";

const toDoc = ({ id, ...user }: UserRecord): UserDoc => ({
  _id: id,
  ...user,
  display_name_lower: nameKey(user.display_name),
});

const toUser = ({
  _id,
  display_name_lower: _,
  chosen_status,
  email_verified_at,
  ...user
}: UserDoc): UserRecord => ({
  id: _id,
  ...user,
  chosen_status: chosen_status ?? "online",
  email_verified_at: email_verified_at ?? null,
});

/**
 * A duplicate key (E11000) on email or username becomes a DuplicateError. The server names the index's
 * fields in keyPattern and keyValue; servers that leave them out still name the index in the message.
 */
function rethrowDuplicate(err: unknown): never {
  if (err instanceof MongoServerError && err.code === 11000) {
    // MongoServerError carries the server's fields untyped ([key: string]: any): a library boundary.
    const described: unknown = err.keyPattern ?? err.keyValue;
    const fields = typeof described === "object" && described !== null ? Object.keys(described) : [];
    if (fields.includes("email") || err.message.includes("index: email_1")) throw new DuplicateError("email");
    if (fields.includes("username") || err.message.includes("index: username_1")) {
      throw new DuplicateError("username");
    }
  }
  throw err;
}

/**
 * Escapes `text` for a regular expression, so that a "." in a prefix is only a dot. NUL is spelt \x00:
 * BSON refuses a regex pattern with a raw NUL in it.
 */
const escapeRegExp = (text: string) => text.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&").replaceAll("\0", "\\x00");

export function mongoUsers({ users }: Collections): UsersRepo {
  return {
    async create(user) {
      try {
        await users.insertOne(toDoc(user));
      } catch (err) {
        rethrowDuplicate(err);
      }
    },
    async byId(id) {
      const doc = await users.findOne({ _id: id });
      return doc && toUser(doc);
    },
    async byEmail(email) {
      const doc = await users.findOne({ email });
      return doc && toUser(doc);
    },
    async byUsername(username) {
      const doc = await users.findOne({ username });
      return doc && toUser(doc);
    },
    async existing(ids) {
      if (ids.length === 0) return [];
      const docs = await users.find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
      return docs.map((d) => d._id);
    },
    async update(id, patch: UserPatch, only: UserCondition = {}) {
      // Only the fields given a value: the driver would store an undefined one as null.
      const set: Partial<UserDoc> = {};
      if (patch.updated_at !== undefined) set.updated_at = patch.updated_at;
      if (patch.display_name !== undefined) {
        set.display_name = patch.display_name;
        set.display_name_lower = nameKey(patch.display_name);
      }
      if (patch.username !== undefined) set.username = patch.username;
      if (patch.status !== undefined) set.status = patch.status;
      if (patch.chosen_status !== undefined) set.chosen_status = patch.chosen_status;
      if (patch.password_hash !== undefined) set.password_hash = patch.password_hash;
      if (patch.email_verified_at !== undefined) set.email_verified_at = patch.email_verified_at;
      if (patch.last_seen !== undefined) set.last_seen = patch.last_seen;
      if (patch.role !== undefined) set.role = patch.role;
      try {
        // A condition on null matches a missing field too (email_verified_at of older documents).
        const filter: Filter<UserDoc> = { _id: id };
        if (only.password_hash !== undefined) filter.password_hash = only.password_hash;
        if (only.email_verified_at !== undefined) filter.email_verified_at = only.email_verified_at;
        // Nothing to write: the document as it is (an empty $set is an error before MongoDB 5.0).
        const doc =
          Object.keys(set).length === 0
            ? await users.findOne(filter)
            : await users.findOneAndUpdate(filter, { $set: set }, { returnDocument: "after" });
        return doc && toUser(doc);
      } catch (err) {
        rethrowDuplicate(err);
      }
    },
    async showChosen(id, now) {
      // One findOneAndUpdate with an update pipeline: the choice read and the status written together.
      // A missing chosen_status (documents of versions before it) reads as "online", as toUser does.
      const chosen = { $ifNull: ["$chosen_status", "online"] };
      const doc = await users.findOneAndUpdate(
        { _id: id, $expr: { $ne: ["$status", chosen] } },
        [
          {
            $set: {
              status: chosen,
              last_seen: { $cond: [{ $eq: [chosen, "offline"] }, now, "$last_seen"] },
            },
          },
        ],
        { returnDocument: "after" },
      );
      return doc && toUser(doc);
    },
    async allOffline(now) {
      const result = await users.updateMany(
        { status: { $ne: "offline" } },
        { $set: { status: "offline", last_seen: now } },
      );
      return result.modifiedCount;
    },
    async notOffline() {
      const docs = await users.find({ status: { $ne: "offline" } }, { projection: { _id: 1 } }).toArray();
      return docs.map((d) => d._id);
    },
    async list({ prefix = "", afterUsername = "", limit }) {
      // limit(0) means "no limit" to MongoDB; the port means none.
      if (limit <= 0) return [];
      const filter: Filter<UserDoc> = {};
      if (afterUsername !== "") filter.username = { $gt: afterUsername };
      if (prefix !== "") {
        // An anchored, case-sensitive regex is a range scan on the index; both columns are lowercase.
        const startsWith = new RegExp(`^${escapeRegExp(prefix)}`);
        filter.$or = [{ username: startsWith }, { display_name_lower: startsWith }];
      }
      const docs = await users.find(filter).sort({ username: 1 }).limit(limit).toArray();
      return docs.map(toUser);
    },
  };
}
