// MongoDB collections, the shape of their documents, the indexes created at boot, and the once-only upgrades
// of documents that earlier versions wrote.

import { BSONRegExp, type Db, type IndexDescription, MongoServerError } from "mongodb";
import { needsSearchText, searchText } from "../../lib/segment.ts";
import { nameKey } from "../../lib/text.ts";
import type {
  ConversationRecord,
  MailedTokenRecord,
  MessageRecord,
  ParticipantRecord,
  RefreshTokenRecord,
  SessionRecord,
  UserRecord,
} from "../types.ts";

/**
 * A user under its id; usernames and emails are stored lowercase, display names also lowercased for search.
 * chosen_status is missing from the documents of versions before it: read as "online", as they connected
 * (the boot that first runs this version keeps the choice of those away or busy then: keepChosenStatus).
 * email_verified_at is missing from those of versions before it: read as null, since sign-up never proved
 * the address.
 */
export type UserDoc = Omit<UserRecord, "id" | "chosen_status" | "email_verified_at"> & {
  _id: string;
  display_name_lower: string;
  chosen_status?: UserRecord["chosen_status"];
  email_verified_at?: UserRecord["email_verified_at"];
};
/** signed_in_by is missing from sessions written before it was kept: "password" (sessions.ts). */
export type SessionDoc = Omit<SessionRecord, "id" | "signed_in_by"> & {
  _id: string;
  signed_in_by?: SessionRecord["signed_in_by"];
};
/** Found by hash (unique index); `_id` is the driver's ObjectId and never leaves the adapter. */
export type RefreshTokenDoc = RefreshTokenRecord;
/** expires_at is a BSON Date here because a TTL index only ever expires documents by a Date. */
export type MailedTokenDoc = Omit<MailedTokenRecord, "expires_at"> & { expires_at: Date };
export interface FailureDoc {
  key: string;
  at: number;
}
export interface LockoutDoc {
  key: string;
  until: number;
}

/**
 * A conversation under its id. last_message_seq never leaves the adapter: it is the seq of last_message_id,
 * so that appends finishing out of order still leave the newest message there (absent before any message).
 * Nor does owner_changes: a count that every owner stepping down writes, so that two doing it at once
 * conflict (one transaction retries and sees the other's change) instead of both leaving. Nor does
 * member_adds: a count that every member added writes, so that an add and the conversation's deletion at
 * once conflict in the same way. receipts_version (MembershipRecord's) is absent until a dm's or group's
 * receipts first change, and never set in a channel. member_count is absent from the documents of versions
 * before it (and of such a version's nodes during a rolling upgrade): counted, and kept, when first read.
 */
export type ConversationDoc = Omit<ConversationRecord, "id" | "member_count"> & {
  _id: string;
  member_count?: number;
  last_message_seq?: number;
  owner_changes?: number;
  member_adds?: number;
  receipts_version?: number;
};
/** Found by (conversation_id, user_id) (unique index); `_id` is the driver's ObjectId and never leaves the adapter. */
/** joined_seq is missing from members added by releases that did not keep it. */
export type ParticipantDoc = Omit<ParticipantRecord, "joined_seq"> & { joined_seq?: number };
/**
 * search_text never leaves the adapter: what search indexes beside the content for text of scripts written
 * without spaces (lib/segment.ts, searchText), absent from every other message.
 */
export type MessageDoc = Omit<MessageRecord, "id"> & { _id: string; search_text?: string };
/** One upgrade of the documents of earlier versions, done (upgrade() below). */
export interface UpgradeDoc {
  _id: string;
  done_at: Date;
}

export function collections(db: Db) {
  return {
    users: db.collection<UserDoc>("users"),
    sessions: db.collection<SessionDoc>("sessions"),
    refreshTokens: db.collection<RefreshTokenDoc>("refresh_tokens"),
    magicLinks: db.collection<MailedTokenDoc>("magic_links"),
    emailVerifications: db.collection<MailedTokenDoc>("email_verifications"),
    loginFailures: db.collection<FailureDoc>("login_failures"),
    lockouts: db.collection<LockoutDoc>("lockouts"),
    conversations: db.collection<ConversationDoc>("conversations"),
    participants: db.collection<ParticipantDoc>("participants"),
    messages: db.collection<MessageDoc>("messages"),
    upgrades: db.collection<UpgradeDoc>("schema_upgrades"),
  };
}

export type Collections = ReturnType<typeof collections>;

/**
 * Expired links are useless, but the TTL monitor runs on the server's clock: a day's grace keeps a link
 * that this node still thinks live from vanishing under clock skew (SQLite purges after a day too).
 */
const MAILED_TOKEN_GRACE_SECONDS = 24 * 3600;
const mailedTokenIndexes: IndexDescription[] = [
  { key: { hash: 1 }, unique: true },
  { key: { expires_at: 1 }, expireAfterSeconds: MAILED_TOKEN_GRACE_SECONDS },
];

/** Idempotent: creating an index that exists with the same options does nothing. */
export async function createIndexes(c: Collections): Promise<void> {
  await Promise.all([
    // Default index names (email_1, username_1): a duplicate-key message names them when keyPattern is absent.
    c.users.createIndexes([
      { key: { email: 1 }, unique: true },
      { key: { username: 1 }, unique: true },
      { key: { display_name_lower: 1 } },
    ]),
    c.sessions.createIndex({ user_id: 1, created_at: 1 }),
    c.refreshTokens.createIndexes([{ key: { hash: 1 }, unique: true }, { key: { session_id: 1 } }]),
    c.magicLinks.createIndexes(mailedTokenIndexes),
    c.emailVerifications.createIndexes(mailedTokenIndexes),
    c.loginFailures.createIndex({ key: 1, at: 1 }),
    c.lockouts.createIndex({ key: 1 }, { unique: true }),
    c.conversations.createIndexes([
      // Only dms carry a dm_key: a partial index leaves every other conversation (dm_key null) out of it.
      { key: { dm_key: 1 }, unique: true, partialFilterExpression: { dm_key: { $type: "string" } } },
      { key: { last_activity: -1, _id: -1 } },
    ]),
    c.participants.createIndexes([
      { key: { conversation_id: 1, user_id: 1 }, unique: true },
      { key: { user_id: 1, conversation_id: 1 } },
      // A conversation's two lowest positions of each kind (positionFloor), in a few index entries.
      { key: { conversation_id: 1, delivered_seq: 1, user_id: 1 } },
      { key: { conversation_id: 1, last_read_seq: 1, user_id: 1 } },
      // A channel's owners and admins, the peers of each of its readers (peersOf), without its readers.
      { key: { conversation_id: 1, role: 1 } },
      // The members who joined at or after a message, not among those it was sent to (receiptCounts).
      // Members of earlier versions without joined_seq are under null here, before every seq.
      { key: { conversation_id: 1, joined_seq: 1 } },
    ]),
    messagesIndexes(c.messages),
  ]);
}

/**
 * The text index of earlier versions, on content alone: a search in one conversation went through every
 * conversation's messages holding its words, and read each of them, to keep that conversation's.
 */
export const OLD_TEXT_INDEX = "content_text";

/** The text index, on the conversation, the content and search_text (messagesIndexes below). */
export const TEXT_INDEX = "conversation_search";

async function messagesIndexes(messages: Collections["messages"]): Promise<void> {
  // These first: they make the collection, so that its indexes can be listed.
  await messages.createIndexes([
    { key: { conversation_id: 1, seq: 1 }, unique: true },
    { key: { conversation_id: 1, version_seq: 1 } },
    // Idempotent sends: only messages that carry a client_msg_id take part.
    {
      key: { conversation_id: 1, sender_id: 1, client_msg_id: 1 },
      unique: true,
      partialFilterExpression: { client_msg_id: { $type: "string" } },
    },
  ]);
  // A collection has one text index at most: an earlier one (on content alone, OLD_TEXT_INDEX, or on the
  // conversation and content) goes before this one is built (searches fail meanwhile). Another node
  // booting at the same moment may have dropped it first (IndexNotFound, 27).
  for (const index of await messages.indexes()) {
    if (index.key._fts !== "text" || index.name === TEXT_INDEX || index.name === undefined) continue;
    await messages.dropIndex(index.name).catch((err: unknown) => {
      if (!(err instanceof MongoServerError && err.code === 27)) throw err;
    });
  }
  // Keyed by conversation first, so that a search (which names one) reads that conversation's entries
  // alone. No language: no stemming and no stop words, as SQLite's FTS5 tokenizer (a word matches only
  // itself). The content is indexed as it is, words of spaced scripts (the server keeps marks inside
  // words and strips the diacritic ones, as searchWords does), and search_text holds the characters of
  // unspaced scripts a token each, and words without the marks search drops, where a message has any: a
  // message without them is indexed exactly as before, and nothing is written again for it.
  await messages.createIndex(
    { conversation_id: 1, content: "text", search_text: "text" },
    { name: TEXT_INDEX, default_language: "none" },
  );
}

/**
 * Display names were keyed by lowercasing alone before nameKey (NFC too): one stored with decomposed
 * accents ("e" and a combining acute, as macOS may send) kept a key that no composed query met.
 */
const NAME_KEYS = "display-name-keys-nfc";

/**
 * Messages of scripts written without spaces were indexed as whole runs of characters before search_text
 * ("messages-search-text-unspaced", the upgrade that added it for them, now done by this one), and
 * messages with the marks search drops had no copy (their query, without those marks, found only what
 * the server's own folding met) before this upgrade: each is given the copy searchText makes now.
 */
const SEARCH_TEXT = "messages-search-text-marks";

/**
 * Brings documents written by earlier versions up to date, each upgrade once per database (recorded in
 * schema_upgrades once done; one cut short runs again at the next boot, and two nodes booting at once
 * may both run it, which writes the same values twice).
 */
export async function upgrade(c: Collections): Promise<void> {
  const once = async (id: string, work: () => Promise<void>) => {
    if (await c.upgrades.findOne({ _id: id })) return;
    await work();
    await c.upgrades.updateOne({ _id: id }, { $set: { done_at: new Date() } }, { upsert: true });
  };
  await once(NAME_KEYS, () => rekeyDisplayNames(c.users));
  await once(SEARCH_TEXT, () => addSearchText(c.messages));
  await once(POSITIONS_FROM_JOINED, () => raisePositionsToJoined(c.participants));
  await once(CHOSEN_STATUS, () => keepChosenStatus(c.users));
}

/**
 * Users written before chosen_status kept no choice apart from their status: one away or busy (dnd) now
 * chose it, and keeps it when they next connect rather than coming back online; an offline one may have
 * chosen to appear offline or have no socket, which nothing recorded: left to read as online. As SQLite's
 * migration 9 does.
 */
const CHOSEN_STATUS = "users-chosen-status";

/**
 * One pass over the users (no index holds status): a document given a choice meanwhile (by this version,
 * which writes one at sign-up and at every choice) is left as it is.
 */
export async function keepChosenStatus(users: Collections["users"]): Promise<void> {
  for (const status of ["away", "dnd"] as const)
    await users.updateMany(
      { status, chosen_status: { $exists: false } },
      { $set: { chosen_status: status } },
    );
}

/**
 * A member's positions are never below joined_seq (receiptCounts takes each who joined after a message as
 * having it). The API adds members so; a document below it, written otherwise, is raised once.
 */
const POSITIONS_FROM_JOINED = "positions-from-joined-seq";

/**
 * One pass over the members (no index holds both fields), each raised in the same update that finds it:
 * a position that moved meanwhile only moved up. A member without joined_seq (an earlier version's, from
 * the start) is left alone: in an expression a missing field is below every number.
 */
export async function raisePositionsToJoined(participants: Collections["participants"]): Promise<void> {
  await participants.updateMany(
    {
      $expr: {
        $or: [{ $lt: ["$last_read_seq", "$joined_seq"] }, { $lt: ["$delivered_seq", "$joined_seq"] }],
      },
    },
    [
      {
        $set: {
          last_read_seq: { $max: ["$last_read_seq", "$joined_seq"] },
          delivered_seq: { $max: ["$delivered_seq", "$joined_seq"] },
        },
      },
    ],
  );
}

/** The key a display name is searched by, when the one stored is not it; null when it is. */
export function staleNameKey(user: Pick<UserDoc, "display_name" | "display_name_lower">): string | null {
  const key = nameKey(user.display_name);
  return key === user.display_name_lower ? null : key;
}

async function rekeyDisplayNames(users: Collections["users"]): Promise<void> {
  // A key of printable ASCII alone is the same either way: only the others are read, found in the index.
  const cursor = users.find(
    { display_name_lower: /[^ -~]/ },
    { projection: { display_name: 1, display_name_lower: 1 } },
  );
  for await (const user of cursor) {
    const key = staleNameKey(user);
    // Only while the name is the one read: a rename meanwhile wrote its own key.
    if (key !== null)
      await users.updateOne(
        { _id: user._id, display_name: user.display_name },
        { $set: { display_name_lower: key } },
      );
  }
}

/**
 * Every character that gives a message a copy (needsSearchText: those of unspaced scripts, the marks
 * search drops), as a regular expression of literal ranges that the server runs (its engine, PCRE, reads
 * no script properties from a driver's RegExp): a message holding none has no search_text and is not read
 * by the upgrade. Planes 0 to 3 hold every such character.
 */
export function searchTextPattern(): BSONRegExp {
  const ranges: string[] = [];
  let start = -1;
  for (let cp = 0; cp <= 0x40000; cp++) {
    const inside = cp < 0x40000 && (cp < 0xd800 || cp > 0xdfff) && needsSearchText(String.fromCodePoint(cp));
    if (inside && start < 0) start = cp;
    if (!inside && start >= 0) {
      ranges.push(`${String.fromCodePoint(start)}-${String.fromCodePoint(cp - 1)}`);
      start = -1;
    }
  }
  return new BSONRegExp(`[${ranges.join("")}]`);
}

async function addSearchText(messages: Collections["messages"]): Promise<void> {
  // The copies already written are read too: the rule that made them (marks among unspaced scripts) changed.
  const cursor = messages.find(
    { content: { $regex: searchTextPattern() } },
    { projection: { content: 1, search_text: 1 } },
  );
  for await (const message of cursor) {
    const text = searchText(message.content);
    // Only while the content is the one read: an edit meanwhile wrote its own.
    if (text !== null && text !== message.search_text)
      await messages.updateOne(
        { _id: message._id, content: message.content },
        { $set: { search_text: text } },
      );
  }
}
