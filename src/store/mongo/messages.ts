// The conversation log on MongoDB: seq allocation, idempotent append, versioned changes, history pages,
// catch-up events and full-text search ($text).

import { type ClientSession, type Filter, MongoServerError } from "mongodb";
import { searchText } from "../../lib/segment.ts";
import { quotedTerms } from "../search.ts";
import {
  type AppendResult,
  type MessageChange,
  type MessageRecord,
  type MessagesRepo,
  MissingError,
} from "../types.ts";
import type { Collections, MessageDoc } from "./schema.ts";

type Session = ClientSession | undefined;

/** Runs a unit of work in a transaction where the deployment has them, or as plain steps where not. */
export interface Transactions {
  run<T>(work: (session: Session) => Promise<T>): Promise<T>;
}

/** A message's document: search_text only for text that needs a copy (lib/segment.ts: needsSearchText). */
const toDoc = ({ id, ...message }: MessageRecord): MessageDoc => {
  const text = searchText(message.content);
  return text === null ? { _id: id, ...message } : { _id: id, ...message, search_text: text };
};
const toMessage = ({ _id, search_text: _, ...message }: MessageDoc): MessageRecord => ({
  id: _id,
  ...message,
});
/** Reads leave search_text on the server: it is as long as the content, and no record shows it. */
const RECORD = { projection: { search_text: 0 } } as const;

/** A change that keeps losing the race to later changes of the same message gives up after this many tries. */
const MAX_CHANGE_ATTEMPTS = 50;

/** Thrown inside a change's transaction that lost the race, so that the seq it took is given back. */
class LostRace extends Error {}

/**
 * What a search for `query` (quotedTerms's) finds: the conversation's live messages holding its words.
 * The equality on the conversation is what lets the text index, keyed by conversation first (schema.ts),
 * read that conversation's entries alone.
 */
export const searchFilter = (conversationId: string, query: string): Filter<MessageDoc> => ({
  conversation_id: conversationId,
  deleted: false,
  // System messages are JSON records of changes, not text anyone wrote.
  message_type: { $ne: "system" },
  $text: { $search: query },
});

/**
 * Runs work for one key (a conversation's appends, a message's changes) one after another, in the order
 * asked, within this process: the last one's promise per key.
 */
function turns() {
  const queues = new Map<string, Promise<unknown>>();
  return <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const before = queues.get(key) ?? Promise.resolve();
    const mine = before.then(work, work);
    queues.set(key, mine);
    const done = () => {
      if (queues.get(key) === mine) queues.delete(key);
    };
    mine.then(done, done);
    return mine;
  };
}

/**
 * On a replica set or sharded cluster (what production runs), allocating a seq and writing the message
 * commit together in one transaction. Two appends to one conversation both write its document, so the
 * second waits for (or retries after) the first: commits land in seq order and a reader of events() never
 * sees seq n+1 before seq n. A standalone server has no transactions; there (development only) the two
 * steps are separate, a crash between them leaves a harmless gap, and two appends may land out of order
 * for a moment.
 */
export function mongoMessages({ conversations, messages }: Collections, tx: Transactions): MessagesRepo {
  /** Takes the conversation's next seq; null when the conversation does not exist. */
  const allocate = async (
    conversationId: string,
    session: Session,
    activity?: number,
  ): Promise<number | null> => {
    const doc = await conversations.findOneAndUpdate(
      { _id: conversationId },
      activity === undefined
        ? { $inc: { last_seq: 1 } }
        : { $inc: { last_seq: 1 }, $max: { last_activity: activity } },
      { returnDocument: "after", projection: { last_seq: 1 }, session },
    );
    return doc ? doc.last_seq : null;
  };

  const byClientId = async (
    draft: Pick<MessageRecord, "conversation_id" | "sender_id" | "client_msg_id">,
    session?: Session,
  ): Promise<MessageRecord | null> => {
    if (draft.client_msg_id === null) return null;
    const doc = await messages.findOne(
      {
        conversation_id: draft.conversation_id,
        sender_id: draft.sender_id,
        // The $type clause lets the server use the partial unique index, which only holds string ids.
        client_msg_id: { $eq: draft.client_msg_id, $type: "string" },
      },
      { ...RECORD, session },
    );
    return doc && toMessage(doc);
  };

  /**
   * This process's appends to each conversation, one after another in the order they were asked for: the
   * SQLite store's group commit keeps that order, and without it one socket's quick messages could take
   * their seqs in any order (each append is several round trips over a pool of connections). In a
   * transaction they would also fight over the conversation's document, the losers retrying after a
   * delay; queued, they do not.
   */
  const inTurn = turns();

  const appendNow = async (draft: Omit<MessageRecord, "seq" | "version_seq">): Promise<AppendResult> => {
    // Looked up before allocating, so that a retried send (the common duplicate) costs no seq.
    const existing = await byClientId(draft);
    if (existing) return { status: "duplicate", message: existing };
    try {
      return await tx.run(async (session) => {
        const seq = await allocate(draft.conversation_id, session);
        if (seq === null) throw new MissingError("conversation", draft.conversation_id);
        const message: MessageRecord = { ...draft, seq, version_seq: seq };
        await messages.insertOne(toDoc(message), { session });
        // Appends from several processes may finish out of order without a transaction: last_message_id
        // follows the highest seq (kept in last_message_seq), not the last write. Pipeline stages read the
        // document as it was before the stage; $literal keeps an id from ever being read as a field path.
        await conversations.updateOne(
          { _id: draft.conversation_id },
          [
            {
              $set: {
                message_count: { $add: ["$message_count", 1] },
                last_activity: { $max: ["$last_activity", draft.created_at] },
                last_message_id: {
                  $cond: [
                    { $gt: [seq, { $ifNull: ["$last_message_seq", 0] }] },
                    { $literal: draft.id },
                    "$last_message_id",
                  ],
                },
                last_message_seq: { $max: [{ $ifNull: ["$last_message_seq", 0] }, seq] },
              },
            },
          ],
          { session },
        );
        return { status: "created", message } satisfies AppendResult;
      });
    } catch (err) {
      // The same send racing itself: the other copy won the unique (conversation, sender, client_msg_id)
      // index after our look-up. Its message is the answer (the transaction rolled our seq back; without
      // one, the seq stays a gap).
      if (err instanceof MongoServerError && err.code === 11000) {
        const winner = await byClientId(draft);
        if (winner) return { status: "duplicate", message: winner };
      }
      throw err;
    }
  };

  const changeInTurn = turns();
  const changeNow = async (id: string, input: MessageChange): Promise<MessageRecord | null> => {
    for (let attempt = 0; attempt < MAX_CHANGE_ATTEMPTS; attempt++) {
      const current = await messages.findOne({ _id: id }, RECORD);
      if (!current) return null;
      const patch = typeof input === "function" ? input(toMessage(current)) : input;
      if (patch === null) return toMessage(current);
      // Only the fields given a value: the driver would store an undefined one as null.
      const set: Partial<MessageDoc> = { updated_at: patch.updated_at };
      // New content takes its own search_text, or none ($unset only when given a field: MongoDB before 5.0
      // refuses an empty one).
      let unset: { $unset: { search_text: "" } } | undefined;
      if (patch.content !== undefined) {
        set.content = patch.content;
        const text = searchText(patch.content);
        if (text === null) unset = { $unset: { search_text: "" } };
        else set.search_text = text;
      }
      if (patch.attachments !== undefined) set.attachments = patch.attachments;
      if (patch.reactions !== undefined) set.reactions = patch.reactions;
      if (patch.edited_at !== undefined) set.edited_at = patch.edited_at;
      if (patch.deleted !== undefined) set.deleted = patch.deleted;
      let applied: MessageDoc | "missing";
      try {
        // As on SQLite, a change counts as activity (last_activity), not as a message (message_count).
        applied = await tx.run(async (session) => {
          const versionSeq = await allocate(current.conversation_id, session, patch.updated_at);
          if (versionSeq === null) return "missing" as const;
          // Only over the version the patch was computed from: a concurrent change that landed first makes
          // this one start again from the newer record with a newer seq, so version_seq never goes backwards
          // and no read-modify-write (reactions) loses a concurrent change.
          const doc = await messages.findOneAndUpdate(
            { _id: id, version_seq: current.version_seq },
            { $set: { ...set, version_seq: versionSeq }, ...unset },
            { ...RECORD, returnDocument: "after", session },
          );
          // Lost the race: throwing aborts the transaction, and the seq taken with it, which no change
          // would ever carry (clients told of it would ask for a catch-up that brings nothing). Without
          // a transaction (a standalone server) it stays taken, a gap readers tolerate.
          if (!doc) throw new LostRace();
          return doc;
        });
      } catch (err) {
        if (err instanceof LostRace) continue;
        throw err;
      }
      return applied === "missing" ? null : toMessage(applied);
    }
    throw new Error(`change: message ${id} kept changing under ${MAX_CHANGE_ATTEMPTS} attempts`);
  };

  return {
    append(draft) {
      return inTurn(draft.conversation_id, () => appendNow(draft));
    },

    change(id, input: MessageChange) {
      // This process's changes to one message, one after another (as its appends to a conversation): a
      // burst of reactions would otherwise each read the same version, and all but one start again (each
      // leaving a seq behind on a standalone server).
      return changeInTurn(id, () => changeNow(id, input));
    },

    async byId(id) {
      const doc = await messages.findOne({ _id: id }, RECORD);
      return doc && toMessage(doc);
    },

    byClientId(conversationId, senderId, clientMsgId) {
      return byClientId({ conversation_id: conversationId, sender_id: senderId, client_msg_id: clientMsgId });
    },

    async page(conversationId, { before, after, limit }) {
      // limit(0) means "no limit" to MongoDB; the port means none.
      if (limit <= 0) return [];
      const seq: { $lt?: number; $gt?: number } = {};
      if (before !== undefined) seq.$lt = before;
      if (after !== undefined) seq.$gt = after;
      const filter: Filter<MessageDoc> = { conversation_id: conversationId };
      if (before !== undefined || after !== undefined) filter.seq = seq;
      if (after !== undefined) {
        const docs = await messages.find(filter, RECORD).sort({ seq: 1 }).limit(limit).toArray();
        return docs.map(toMessage);
      }
      // Neither bound, or only `before`: the latest `limit` of them, read newest first and turned around.
      const docs = await messages.find(filter, RECORD).sort({ seq: -1 }).limit(limit).toArray();
      return docs.reverse().map(toMessage);
    },

    async events(conversationId, after, limit) {
      if (limit <= 0) return [];
      const docs = await messages
        .find({ conversation_id: conversationId, version_seq: { $gt: after } }, RECORD)
        .sort({ version_seq: 1 })
        .limit(limit)
        .toArray();
      return docs.map(toMessage);
    },

    async countUnread(conversationId, afterSeq, userId) {
      return messages.countDocuments({
        conversation_id: conversationId,
        seq: { $gt: afterSeq },
        sender_id: { $ne: userId },
        deleted: false,
        message_type: { $ne: "system" },
      });
    },

    async search(conversationId, text, limit) {
      const query = quotedTerms(text);
      if (!query || limit <= 0) return [];
      const docs = await messages
        .find(searchFilter(conversationId, query), RECORD)
        .sort({ score: { $meta: "textScore" }, seq: -1 })
        .limit(limit)
        .toArray();
      return docs.map(toMessage);
    },
  };
}
