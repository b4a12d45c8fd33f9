// The conversation log on MongoDB: seq allocation, idempotent append, versioned changes, history pages,
// catch-up events and full-text search ($text).

import { type Filter, MongoServerError } from "mongodb";
import type { AppendResult, MessageChange, MessageRecord, MessagesRepo } from "../types.ts";
import type { Collections, MessageDoc } from "./schema.ts";

const toDoc = ({ id, ...message }: MessageRecord): MessageDoc => ({ _id: id, ...message });
const toMessage = ({ _id, ...message }: MessageDoc): MessageRecord => ({ id: _id, ...message });

/** A change that keeps losing the race to later changes of the same message gives up after this many seqs. */
const MAX_CHANGE_ATTEMPTS = 50;

/**
 * Turns user text into a $text search of quoted terms, so that no input is syntax (a "-" would negate, a
 * quote would open a phrase) and, as on SQLite, every term must match: $text ANDs phrases, ORs bare words.
 */
export function textQuery(text: string): string | null {
  const terms = text.match(/[\p{L}\p{N}_]+/gu);
  if (!terms) return null;
  return terms
    .slice(0, 16)
    .map((t) => `"${t}"`)
    .join(" ");
}

/**
 * Without a multi-document transaction (a standalone server has none), allocating a seq on the conversation
 * and writing the message are two steps. What that leaves open, by design:
 * - a seq can be allocated and never used (a crash between the steps, or a client_msg_id race below): a gap
 *   in seqs, which readers must tolerate (version_seq has gaps anyway, as a message's older versions vanish);
 * - two appends may land out of seq order for a moment, so a reader of events() can briefly see seq n+1
 *   before seq n exists.
 */
export function mongoMessages({ conversations, messages }: Collections): MessagesRepo {
  /** Takes the conversation's next seq; null when the conversation does not exist. */
  const allocate = async (conversationId: string, activity?: number): Promise<number | null> => {
    const doc = await conversations.findOneAndUpdate(
      { _id: conversationId },
      activity === undefined
        ? { $inc: { last_seq: 1 } }
        : { $inc: { last_seq: 1 }, $max: { last_activity: activity } },
      { returnDocument: "after", projection: { last_seq: 1 } },
    );
    return doc ? doc.last_seq : null;
  };

  const byClientId = async (
    draft: Omit<MessageRecord, "seq" | "version_seq">,
  ): Promise<MessageRecord | null> => {
    if (draft.client_msg_id === null) return null;
    const doc = await messages.findOne({
      conversation_id: draft.conversation_id,
      sender_id: draft.sender_id,
      client_msg_id: draft.client_msg_id,
    });
    return doc && toMessage(doc);
  };

  return {
    async append(draft): Promise<AppendResult> {
      // Looked up before allocating, so that a retried send (the common duplicate) costs no seq.
      const existing = await byClientId(draft);
      if (existing) return { status: "duplicate", message: existing };
      const seq = await allocate(draft.conversation_id);
      if (seq === null) throw new Error(`append: conversation ${draft.conversation_id} does not exist`);
      const message: MessageRecord = { ...draft, seq, version_seq: seq };
      try {
        await messages.insertOne(toDoc(message));
      } catch (err) {
        // The same send racing itself: the other copy won the unique (conversation, sender, client_msg_id)
        // index after our look-up. Its message is the answer; the seq we allocated stays a gap.
        if (err instanceof MongoServerError && err.code === 11000) {
          const winner = await byClientId(draft);
          if (winner) return { status: "duplicate", message: winner };
        }
        throw err;
      }
      // Counted only once the message is stored, so a lost race above counts nothing. Appends may finish
      // out of order: last_message_id follows the highest seq (kept in last_message_seq), not the last write.
      // Pipeline stages read the document as it was before the stage; $literal keeps an id from ever being
      // read as a field path.
      await conversations.updateOne({ _id: draft.conversation_id }, [
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
      ]);
      return { status: "created", message };
    },

    async change(id, input: MessageChange) {
      for (let attempt = 0; attempt < MAX_CHANGE_ATTEMPTS; attempt++) {
        const current = await messages.findOne({ _id: id });
        if (!current) return null;
        const patch = typeof input === "function" ? input(toMessage(current)) : input;
        if (patch === null) return toMessage(current);
        // Only the fields given a value: the driver would store an undefined one as null.
        const set: Partial<MessageDoc> = { updated_at: patch.updated_at };
        if (patch.content !== undefined) set.content = patch.content;
        if (patch.attachments !== undefined) set.attachments = patch.attachments;
        if (patch.reactions !== undefined) set.reactions = patch.reactions;
        if (patch.edited_at !== undefined) set.edited_at = patch.edited_at;
        if (patch.deleted !== undefined) set.deleted = patch.deleted;
        // As on SQLite, a change counts as activity (last_activity), not as a message (message_count).
        const versionSeq = await allocate(current.conversation_id, patch.updated_at);
        if (versionSeq === null) return null;
        // Only over the version the patch was computed from: a concurrent change that landed first makes
        // this one start again from the newer record with a newer seq, so version_seq never goes backwards
        // and no read-modify-write (reactions) loses a concurrent change.
        const doc = await messages.findOneAndUpdate(
          { _id: id, version_seq: current.version_seq },
          { $set: { ...set, version_seq: versionSeq } },
          { returnDocument: "after" },
        );
        if (doc) return toMessage(doc);
        // Lost the race: the seq taken is a gap, which readers tolerate.
      }
      throw new Error(`change: message ${id} kept changing under ${MAX_CHANGE_ATTEMPTS} attempts`);
    },

    async byId(id) {
      const doc = await messages.findOne({ _id: id });
      return doc && toMessage(doc);
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
        const docs = await messages.find(filter).sort({ seq: 1 }).limit(limit).toArray();
        return docs.map(toMessage);
      }
      // Neither bound, or only `before`: the latest `limit` of them, read newest first and turned around.
      const docs = await messages.find(filter).sort({ seq: -1 }).limit(limit).toArray();
      return docs.reverse().map(toMessage);
    },

    async events(conversationId, after, limit) {
      if (limit <= 0) return [];
      const docs = await messages
        .find({ conversation_id: conversationId, version_seq: { $gt: after } })
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
      const query = textQuery(text);
      if (!query || limit <= 0) return [];
      const docs = await messages
        .find({ conversation_id: conversationId, deleted: false, $text: { $search: query } })
        .sort({ score: { $meta: "textScore" }, seq: -1 })
        .limit(limit)
        .toArray();
      return docs.map(toMessage);
    },
  };
}
