// Conversations and their members on MongoDB.

import {
  type ClientSession,
  type Document,
  type Filter,
  MongoServerError,
  type UpdateFilter,
  type WithId,
} from "mongodb";
import { floorFrom } from "../floor.ts";
import { receiptCountsFrom } from "../receipt-counts.ts";
import {
  type ConversationPatch,
  type ConversationRecord,
  type ConversationsRepo,
  DuplicateError,
  GroupFullError,
  LastOwnerError,
  type MembershipRecord,
  MissingError,
  type ParticipantRecord,
} from "../types.ts";
import type { Transactions } from "./messages.ts";
import type { Collections, ConversationDoc, ParticipantDoc } from "./schema.ts";

/** The record of a document whose member count is known (counted() finds those that lack one). */
const toConversation = (
  {
    _id,
    last_message_seq: _,
    owner_changes: __,
    receipts_version: ___,
    member_adds: ____,
    ...conversation
  }: ConversationDoc,
  memberCount: number,
): ConversationRecord => ({ id: _id, ...conversation, member_count: memberCount });

/** Members added before joined_seq was kept have none: they start at 0, the conversation's start. */
const toParticipant = ({
  _id: _,
  joined_seq,
  ...participant
}: WithId<ParticipantDoc>): ParticipantRecord => ({
  ...participant,
  joined_seq: joined_seq ?? 0,
});

/** A duplicate key (E11000) on dm_key becomes DuplicateError("dm"); anything else is rethrown. */
function rethrowDuplicateDm(err: unknown): never {
  if (err instanceof MongoServerError && err.code === 11000) {
    // MongoServerError carries the server's fields untyped ([key: string]: any): a library boundary.
    const described: unknown = err.keyPattern ?? err.keyValue;
    const fields = typeof described === "object" && described !== null ? Object.keys(described) : [];
    if (fields.includes("dm_key") || err.message.includes("index: dm_key_1")) throw new DuplicateError("dm");
  }
  throw err;
}

/** A new member's positions, never below where they joined (ParticipantRecord.last_read_seq). */
const fromJoined = <P extends Pick<ParticipantRecord, "joined_seq" | "last_read_seq" | "delivered_seq">>(
  p: P,
): P => ({
  ...p,
  last_read_seq: Math.max(p.last_read_seq, p.joined_seq),
  delivered_seq: Math.max(p.delivered_seq, p.joined_seq),
});

/**
 * Adds a member unless (conversation_id, user_id) exists: an upsert that only sets fields on insert, so an
 * existing member keeps its role and read state, and two concurrent adds still store one row (the server
 * retries an upsert that loses the race on the unique index).
 */
const addMember = ({
  conversation_id,
  user_id,
  ...rest
}: ParticipantRecord): { filter: Filter<ParticipantDoc>; update: UpdateFilter<ParticipantDoc> } => ({
  filter: { conversation_id, user_id },
  update: { $setOnInsert: fromJoined(rest) },
});

/**
 * Pipeline stages see the document as it was before the stage, so each $cond compares with the old value:
 * a time moves only with the seq it belongs to, and seqs only ever go up.
 */
function forward(seq: number, now: number, read: boolean): Document[] {
  const set: Document = {
    delivered_at: { $cond: [{ $gt: [seq, "$delivered_seq"] }, now, "$delivered_at"] },
    delivered_seq: { $max: ["$delivered_seq", seq] },
  };
  if (read) {
    set.read_at = { $cond: [{ $gt: [seq, "$last_read_seq"] }, now, "$read_at"] };
    set.last_read_seq = { $max: ["$last_read_seq", seq] };
  }
  return [{ $set: set }];
}

/** What `forward` makes of a member's record: the same rules, applied to the record it was applied to. */
function advanced(p: ParticipantRecord, seq: number, now: number, read: boolean): ParticipantRecord {
  const next = { ...p };
  if (seq > p.delivered_seq) Object.assign(next, { delivered_seq: seq, delivered_at: now });
  if (read && seq > p.last_read_seq) Object.assign(next, { last_read_seq: seq, read_at: now });
  return next;
}

/**
 * The two lowest of one position among a conversation's members, from the index on (conversation_id,
 * position, user_id): sorted and cut there, not in memory.
 */
const lowest = (conversationId: string, field: "delivered_seq" | "last_read_seq"): Document[] => [
  { $match: { conversation_id: conversationId } },
  { $sort: { [field]: 1, user_id: 1 } },
  { $limit: 2 },
  {
    $project: {
      _id: 0,
      read: { $literal: field === "last_read_seq" },
      user_id: 1,
      seq: `$${field}`,
    },
  },
];

export function mongoConversations(
  { conversations, participants, messages }: Collections,
  tx: Transactions,
): ConversationsRepo {
  /**
   * A dm's or group's receipts changed (MembershipRecord.receipts_version), written after the change; a
   * channel keeps no count (its thousands of readers would all write the one document).
   */
  const receiptsChanged = (conversationId: string, session?: ClientSession) =>
    conversations.updateOne(
      { _id: conversationId, conversation_type: { $ne: "channel" } },
      { $inc: { receipts_version: 1 } },
      { session },
    );

  /**
   * Moves a conversation's member count, in the transaction of the member row's change: a document without
   * one (written by an earlier version) is left without, and counted when read (counted()).
   */
  const membersChanged = (conversationId: string, by: number, session?: ClientSession) =>
    conversations.updateOne(
      { _id: conversationId, member_count: { $exists: true } },
      { $inc: { member_count: by } },
      { session },
    );

  /**
   * Counts the members of a conversation whose document has no count, and keeps the count there: in one
   * transaction, which conflicts with a member added or removed meanwhile (both write the document), so
   * that the count kept is never one from before such a change. Once per conversation.
   */
  const countMembers = (conversationId: string) =>
    tx.run(async (session) => {
      const count = await participants.countDocuments({ conversation_id: conversationId }, { session });
      await conversations.updateOne(
        { _id: conversationId, member_count: { $exists: false } },
        { $set: { member_count: count } },
        { session },
      );
      return count;
    });

  /** The records of these documents, in their order. */
  const counted = (docs: ConversationDoc[]): Promise<ConversationRecord[]> =>
    Promise.all(docs.map(async (d) => toConversation(d, d.member_count ?? (await countMembers(d._id)))));
  const countedOne = async (doc: ConversationDoc | null) =>
    doc ? ((await counted([doc]))[0] ?? null) : null;

  const mark = async (conversationId: string, userId: string, seq: number, now: number, read: boolean) => {
    // The record as it was, so that whether this moved anything is known; the update is atomic, so the
    // record it made is `forward` applied to that one.
    const before = await participants.findOneAndUpdate(
      { conversation_id: conversationId, user_id: userId },
      forward(seq, now, read),
      { returnDocument: "before" },
    );
    if (!before) return null;
    const was = toParticipant(before);
    const after = advanced(was, seq, now, read);
    if (after.delivered_seq !== was.delivered_seq || after.last_read_seq !== was.last_read_seq)
      await receiptsChanged(conversationId);
    return after;
  };

  const idsForUser = async (userId: string) => {
    const rows = await participants
      .find({ user_id: userId }, { projection: { _id: 0, conversation_id: 1 } })
      .toArray();
    return rows.map((r) => r.conversation_id);
  };

  /**
   * In a transaction (the row's change and the member count move together). With keepOwner, an owner
   * stepping down (removed, or given another role) first writes the conversation's owner_changes, so that
   * two at once conflict (withTransaction runs the loser again, which then counts the other's change)
   * rather than each counting the other still an owner.
   */
  const stepDown = async <T>(
    conversationId: string,
    userId: string,
    keepOwner: boolean,
    write: (session: ClientSession | undefined) => Promise<T>,
    notMember: T,
  ): Promise<T> => {
    return tx.run(async (session) => {
      if (!keepOwner) return write(session);
      const target = await participants.findOne(
        { conversation_id: conversationId, user_id: userId },
        { session },
      );
      if (!target) return notMember;
      if (target.role === "owner") {
        await conversations.updateOne({ _id: conversationId }, { $inc: { owner_changes: 1 } }, { session });
        const others = await participants.countDocuments(
          { conversation_id: conversationId, role: "owner", user_id: { $ne: userId } },
          { session },
        );
        if (others === 0) throw new LastOwnerError(conversationId);
      }
      return write(session);
    });
  };

  return {
    async create(conversation, members) {
      const { id, ...rest } = conversation;
      // Each member row counted by the write that made it (the upserts'): exact whatever else adds one.
      // One transaction where the deployment has them: a dm is never seen, by the one who lost the race
      // to open it, before its members are, and a crash cannot leave one without them (its dm_key would
      // then refuse every later one). The conversation first: a dm refused as a duplicate leaves no
      // members behind. Without transactions (a standalone server) the two writes are apart.
      await tx.run(async (session) => {
        try {
          await conversations.insertOne({ _id: id, ...rest, member_count: 0 }, { session });
        } catch (err) {
          rethrowDuplicateDm(err);
        }
        if (members.length > 0) {
          const upserts = members.map((m) => ({ updateOne: { ...addMember(m), upsert: true } }));
          const written = await participants.bulkWrite(upserts, { ordered: false, session });
          if (written.upsertedCount > 0) await membersChanged(id, written.upsertedCount, session);
        }
      });
    },
    async byId(id) {
      return countedOne(await conversations.findOne({ _id: id }));
    },
    async byDmKey(dmKey) {
      // The $type clause lets the server use the partial index on dm_key, which only holds strings.
      return countedOne(await conversations.findOne({ dm_key: { $eq: dmKey, $type: "string" } }));
    },
    async listForUser(userId, limit, before) {
      // limit(0) means "no limit" to MongoDB; the port means none.
      if (limit <= 0) return [];
      const ids = await idsForUser(userId);
      if (ids.length === 0) return [];
      const filter: Filter<ConversationDoc> = { _id: { $in: ids } };
      if (before) {
        filter.$or = [
          { last_activity: { $lt: before.last_activity } },
          { last_activity: before.last_activity, _id: { $lt: before.id } },
        ];
      }
      const docs = await conversations
        .find(filter)
        .sort({ last_activity: -1, _id: -1 })
        .limit(limit)
        .toArray();
      return counted(docs);
    },
    async listForUserById(userId, limit, afterId) {
      const out: ConversationDoc[] = [];
      let after = afterId;
      // Member rows in the index's order (user_id, conversation_id), then their conversations. A row whose
      // conversation is gone (deleted without a transaction, its members not yet) is passed over, and more
      // rows read in its place, so that a short page still means the end.
      while (out.length < limit) {
        const want = limit - out.length;
        const rows = await participants
          .find(
            after === undefined ? { user_id: userId } : { user_id: userId, conversation_id: { $gt: after } },
            { projection: { _id: 0, conversation_id: 1 } },
          )
          .sort({ conversation_id: 1 })
          .limit(want)
          .toArray();
        const ids = rows.map((r) => r.conversation_id);
        if (ids.length === 0) break;
        const docs = new Map(
          (await conversations.find({ _id: { $in: ids } }).toArray()).map((d) => [d._id, d]),
        );
        for (const id of ids) {
          const doc = docs.get(id);
          if (doc) out.push(doc);
        }
        if (ids.length < want) break;
        after = ids.at(-1);
      }
      return counted(out);
    },
    idsForUser,
    async peersOf(userId) {
      const mine = await participants
        .find({ user_id: userId }, { projection: { conversation_id: 1, role: 1 } })
        .toArray();
      if (mine.length === 0) return [userId];
      // A channel's readers are peers of its owners and admins only (see the port).
      const channels = new Set(
        (
          await conversations
            .find(
              { _id: { $in: mine.map((p) => p.conversation_id) }, conversation_type: "channel" },
              { projection: { _id: 1 } },
            )
            .toArray()
        ).map((c) => c._id),
      );
      const whole = mine.filter((p) => !channels.has(p.conversation_id) || p.role !== "member");
      const managed = mine.filter((p) => channels.has(p.conversation_id) && p.role === "member");
      const peers = (await participants.distinct("user_id", {
        $or: [
          { conversation_id: { $in: whole.map((p) => p.conversation_id) } },
          // By { conversation_id, role }: a channel's owners and admins, not a pass over its readers.
          {
            conversation_id: { $in: managed.map((p) => p.conversation_id) },
            role: { $in: ["owner", "admin"] },
          },
        ],
      })) as string[];
      return peers.includes(userId) ? peers : [...peers, userId];
    },
    async memberships(userId, ids) {
      if (ids.length === 0) return [];
      const [mine, found] = await Promise.all([
        participants.find({ user_id: userId, conversation_id: { $in: [...ids] } }).toArray(),
        conversations
          .find(
            { _id: { $in: [...ids] } },
            { projection: { _id: 1, conversation_type: 1, receipts_version: 1 } },
          )
          .toArray(),
      ]);
      const byId = new Map(found.map((c) => [c._id, c]));
      const out: MembershipRecord[] = [];
      for (const doc of mine) {
        const c = byId.get(doc.conversation_id);
        if (c)
          out.push({
            ...toParticipant(doc),
            conversation_type: c.conversation_type,
            receipts_version: c.receipts_version ?? 0,
          });
      }
      return out;
    },

    async peersAmong(userId, ids) {
      const found = new Set(ids.includes(userId) ? [userId] : []);
      const others = [...new Set(ids)].filter((id) => id !== userId);
      if (others.length === 0) return [...found];
      // Three queries however many ids: the user's memberships, those of the ids in the same
      // conversations (the unique (conversation_id, user_id) index), and then, for pairs who are both
      // plain members somewhere, which of those conversations are channels.
      const mine = new Map(
        (
          await participants
            .find({ user_id: userId }, { projection: { _id: 0, conversation_id: 1, role: 1 } })
            .toArray()
        ).map((p) => [p.conversation_id, p.role]),
      );
      if (mine.size === 0) return [...found];
      const theirs = await participants
        .find(
          { conversation_id: { $in: [...mine.keys()] }, user_id: { $in: others } },
          { projection: { _id: 0, conversation_id: 1, user_id: 1, role: 1 } },
        )
        .toArray();
      // A channel's readers are peers of its owners and admins only (see the port).
      const readersOfBoth = new Map<string, string[]>();
      for (const p of theirs) {
        if (mine.get(p.conversation_id) !== "member" || p.role !== "member") found.add(p.user_id);
        else if (readersOfBoth.has(p.conversation_id)) readersOfBoth.get(p.conversation_id)?.push(p.user_id);
        else readersOfBoth.set(p.conversation_id, [p.user_id]);
      }
      const undecided = [...readersOfBoth].filter(([, users]) => users.some((u) => !found.has(u)));
      if (undecided.length === 0) return [...found];
      // Channels found, as peersOf finds them: a conversation not found is not one.
      const channels = new Set(
        (
          await conversations
            .find(
              { _id: { $in: undecided.map(([id]) => id) }, conversation_type: "channel" },
              { projection: { _id: 1 } },
            )
            .toArray()
        ).map((c) => c._id),
      );
      for (const [id, users] of undecided) if (!channels.has(id)) for (const u of users) found.add(u);
      return [...found];
    },
    async lastSeqs(ids) {
      if (ids.length === 0) return new Map();
      const docs = await conversations
        .find({ _id: { $in: [...ids] } }, { projection: { _id: 1, last_seq: 1 } })
        .toArray();
      return new Map(docs.map((d) => [d._id, d.last_seq]));
    },
    async update(id, patch: ConversationPatch) {
      // Only the fields given a value: the driver would store an undefined one as null.
      const set: Partial<ConversationDoc> = { updated_at: patch.updated_at };
      if (patch.name !== undefined) set.name = patch.name;
      if (patch.topic !== undefined) set.topic = patch.topic;
      const doc = await conversations.findOneAndUpdate(
        { _id: id },
        { $set: set },
        { returnDocument: "after" },
      );
      return countedOne(doc);
    },
    async delete(id) {
      // The conversation and its members go together (one transaction where the deployment has them), so
      // that nobody is left a member of a conversation that is gone. No append can allocate a seq in it
      // after that; its messages, which nothing reaches without the conversation, go after, outside the
      // transaction (a long log would make it a long one). Without transactions an append that had
      // already allocated may still insert its message after the deleteMany.
      await tx.run(async (session) => {
        await conversations.deleteOne({ _id: id }, { session });
        await participants.deleteMany({ conversation_id: id }, { session });
      });
      await messages.deleteMany({ conversation_id: id });
    },
    async participants(conversationId) {
      const docs = await participants
        .find({ conversation_id: conversationId })
        .sort({ joined_at: 1, user_id: 1 })
        .toArray();
      return docs.map(toParticipant);
    },
    async managers(conversationId) {
      // By { conversation_id, role }: a channel's owners and admins, not a pass over its readers.
      const docs = await participants
        .find(
          { conversation_id: conversationId, role: { $in: ["owner", "admin"] } },
          { hint: { conversation_id: 1, role: 1 } },
        )
        .sort({ joined_at: 1, user_id: 1 })
        .toArray();
      return docs.map(toParticipant);
    },
    async participantsPage(conversationId, limit, afterUserId) {
      // limit(0) means "no limit" to MongoDB; the port means none.
      if (limit <= 0) return [];
      // A range of the unique { conversation_id, user_id } index, in its order.
      const docs = await participants
        .find(
          afterUserId === undefined
            ? { conversation_id: conversationId }
            : { conversation_id: conversationId, user_id: { $gt: afterUserId } },
        )
        .sort({ user_id: 1 })
        .limit(limit)
        .toArray();
      return docs.map(toParticipant);
    },
    async participant(conversationId, userId) {
      const doc = await participants.findOne({ conversation_id: conversationId, user_id: userId });
      return doc && toParticipant(doc);
    },
    async positionFloor(conversationId) {
      // One round trip: the read side joins the delivered side's result ($unionWith, MongoDB 4.4).
      const rows = await participants
        .aggregate<{ read: boolean; user_id: string; seq: number }>([
          ...lowest(conversationId, "delivered_seq"),
          {
            $unionWith: {
              coll: participants.collectionName,
              pipeline: lowest(conversationId, "last_read_seq"),
            },
          },
        ])
        .toArray();
      return floorFrom(rows);
    },
    async receiptCounts(conversationId, seq, senderId) {
      // One transaction where the deployment has them, for one state of the members (its snapshot; the
      // member count moves in the transaction of each member row). One read after the other: a
      // transaction's operations do not run at once on its session.
      return tx.run(async (session) => {
        const found = await conversations.findOne(
          { _id: conversationId },
          { projection: { member_count: 1 }, session },
        );
        if (!found) return { recipients: 0, delivered: 0, read: 0 };
        // A document of an earlier version has no count yet: byId counts and keeps one when it reads it.
        const members =
          found.member_count ??
          (await participants.countDocuments({ conversation_id: conversationId }, { session }));
        // Each a range of its index, counted there with no document read. A member without joined_seq
        // (an earlier version's) is under null in { conversation_id, joined_seq }, before every seq.
        const range = async (field: "joined_seq" | "delivered_seq" | "last_read_seq", hint: Document) =>
          participants.countDocuments(
            { conversation_id: conversationId, [field]: { $gte: seq } },
            { hint, session },
          );
        const joined = await range("joined_seq", { conversation_id: 1, joined_seq: 1 });
        const delivered = await range("delivered_seq", { conversation_id: 1, delivered_seq: 1, user_id: 1 });
        const read = await range("last_read_seq", { conversation_id: 1, last_read_seq: 1, user_id: 1 });
        const sender = await participants.findOne(
          { conversation_id: conversationId, user_id: senderId },
          { session },
        );
        return receiptCountsFrom(
          { members, joined, delivered, read, sender: sender && toParticipant(sender) },
          seq,
        );
      });
    },
    async addParticipant(participant, options) {
      const { filter, update } = addMember(participant);
      // Only into a conversation that exists: a member row of a deleted conversation would still count for
      // the user's conversations and peers. Reading the conversation is not enough under a transaction's
      // snapshot isolation: an add that only read it and a deletion (whose deleteMany cannot see the new
      // row) would both commit. Writing it (member_adds) makes the two conflict, and the one retried sees
      // what the other did.
      return tx.run(async (session) => {
        const id = participant.conversation_id;
        const found = await conversations.findOneAndUpdate(
          { _id: id },
          { $inc: { member_adds: 1 } },
          { projection: { _id: 1, member_count: 1 }, session },
        );
        if (!found) throw new MissingError("conversation", id);
        // The count as of this write: adds at the same moment all write this document, so under a
        // transaction each one that commits saw the others' counts. (A standalone server, which has none,
        // may let adds at the same moment pass it by one each: a development server.)
        const maxMembers = options?.maxMembers;
        if (maxMembers !== undefined) {
          const members =
            found.member_count ?? (await participants.countDocuments({ conversation_id: id }, { session }));
          if (members >= maxMembers) {
            const member = await participants.findOne(
              { conversation_id: id, user_id: participant.user_id },
              { projection: { _id: 1 }, session },
            );
            if (member) return false;
            throw new GroupFullError(id, maxMembers);
          }
        }
        const result = await participants.updateOne(filter, update, { upsert: true, session });
        const added = result.upsertedCount === 1;
        // Without a transaction (a standalone server) a deletion may come between the steps. One that
        // removes the conversation after the look below removes its members after this row was written;
        // one that removed it before may have removed them before: a conversation gone takes the row back.
        if (added && !session && !(await conversations.findOne({ _id: id }, { projection: { _id: 1 } }))) {
          await participants.deleteOne({ conversation_id: id, user_id: participant.user_id });
          throw new MissingError("conversation", id);
        }
        // One after the other: a transaction's operations do not run at once on its session.
        if (added) {
          await membersChanged(id, 1, session);
          await receiptsChanged(id, session);
        }
        return added;
      });
    },
    async setRole(conversationId, userId, role, options) {
      const keepOwner = (options?.keepOwner ?? false) && role !== "owner";
      return stepDown(
        conversationId,
        userId,
        keepOwner,
        async (session) => {
          const doc = await participants.findOneAndUpdate(
            { conversation_id: conversationId, user_id: userId },
            { $set: { role } },
            { returnDocument: "after", session },
          );
          return doc && toParticipant(doc);
        },
        null,
      );
    },
    async removeParticipant(conversationId, userId, options) {
      return stepDown(
        conversationId,
        userId,
        options?.keepOwner ?? false,
        async (session) => {
          const result = await participants.deleteOne(
            { conversation_id: conversationId, user_id: userId },
            { session },
          );
          if (result.deletedCount === 1) {
            await membersChanged(conversationId, -1, session);
            await receiptsChanged(conversationId, session);
          }
          return result.deletedCount === 1;
        },
        false,
      );
    },
    async markRead(conversationId, userId, seq, now) {
      return mark(conversationId, userId, seq, now, true);
    },
    async markDelivered(conversationId, userId, seq, now) {
      return mark(conversationId, userId, seq, now, false);
    },
  };
}
