// Conversations and their members on SQLite.

import type { Database } from "bun:sqlite";
import { floorFrom } from "../floor.ts";
import { type ReceiptRanges, receiptCountsFrom } from "../receipt-counts.ts";
import {
  type ConversationPatch,
  type ConversationRecord,
  type ConversationsRepo,
  DuplicateError,
  GroupFullError,
  LastOwnerError,
  type MembershipRecord,
  MissingError,
  type NewConversation,
  type ParticipantRecord,
} from "../types.ts";
import { groupCommit } from "./group-commit.ts";
import { bind } from "./schema.ts";
import { afterMessagesDeleted } from "./search-index.ts";

type ConversationRow = Omit<ConversationRecord, "encrypted"> & { encrypted: number };

const toConversation = (row: ConversationRow | null): ConversationRecord | null =>
  row ? { ...row, encrypted: row.encrypted === 1 } : null;

/** The columns a conversation is created with: `num`, its key in the messages indexes, stays inside the store. */
const NEW_COLUMNS =
  "id, name, topic, conversation_type, encrypted, dm_key, last_message_id, last_activity, last_seq, " +
  "message_count, created_by, created_at, updated_at";
/** A record's columns: member_count is the triggers' (migration 15), moved by each member added or removed. */
const COLUMNS = `${NEW_COLUMNS}, member_count`;

/**
 * A conversation's two lowest delivered and read positions (?1 conversation): two entries of each index
 * (participants_delivered, participants_read), in their order, whatever the number of members.
 */
export const FLOOR_QUERY = `SELECT 0 AS read, user_id, seq FROM (SELECT user_id, delivered_seq AS seq FROM participants
     WHERE conversation_id = ?1 ORDER BY delivered_seq, user_id LIMIT 2)
   UNION ALL
   SELECT 1, user_id, seq FROM (SELECT user_id, last_read_seq AS seq FROM participants
     WHERE conversation_id = ?1 ORDER BY last_read_seq, user_id LIMIT 2)`;

/**
 * A user's memberships among conversations (?1 user, ?2 the ids as one JSON array: one bound value however
 * many, one prepared statement): each id is one lookup of the member's row and one of the conversation's,
 * by their keys. CROSS JOIN keeps the ids outermost: the planner otherwise walked the user's every
 * membership and looked through the whole list for each.
 */
export const MEMBERSHIPS_QUERY = `SELECT p.*, c.conversation_type, c.receipts_version
   FROM json_each(?2) ids CROSS JOIN participants p ON p.conversation_id = ids.value AND p.user_id = ?1
   JOIN conversations c ON c.id = p.conversation_id`;

/**
 * Which of the ids in the JSON array ?2 are peers of user ?1 (peersOf's relation). Driven by the ids, each
 * through its own conversations (participants_user) and then the user's membership there (primary key):
 * never a scan of a large channel's members, as a join led by the user's conversations would be.
 */
export const PEERS_AMONG = `SELECT DISTINCT j.value AS user_id FROM json_each(?2) j
  WHERE j.value = ?1 OR EXISTS (
    SELECT 1 FROM participants them
    CROSS JOIN participants me ON me.conversation_id = them.conversation_id AND me.user_id = ?1
    CROSS JOIN conversations c ON c.id = them.conversation_id
    WHERE them.user_id = j.value
      AND (c.conversation_type != 'channel' OR me.role != 'member' OR them.role != 'member'))`;

/**
 * The user ?1's peers, themself among them (the port's peersOf). In a channel where the user is a reader
 * only its owners and admins are, found through participants_role: the one query that read every member
 * of a channel for each of its readers made a storm of 10,000 readers connecting read 10,000 rows each.
 */
export const PEERS_OF = `SELECT them.user_id FROM participants me
     CROSS JOIN conversations c ON c.id = me.conversation_id
     CROSS JOIN participants them ON them.conversation_id = me.conversation_id
     WHERE me.user_id = ?1 AND (c.conversation_type != 'channel' OR me.role != 'member')
   UNION
   SELECT them.user_id FROM participants me
     CROSS JOIN conversations c ON c.id = me.conversation_id
     CROSS JOIN participants them INDEXED BY participants_role
       ON them.conversation_id = me.conversation_id AND them.role IN ('owner', 'admin')
     WHERE me.user_id = ?1 AND c.conversation_type = 'channel' AND me.role = 'member'
   UNION
   SELECT ?1`;

/**
 * A conversation's owners and admins (?1), through participants_role: a few index entries, where reading
 * its members to keep those would pass over every reader of a channel (the sort is of those few alone).
 */
export const MANAGERS_QUERY = `SELECT * FROM participants INDEXED BY participants_role
  WHERE conversation_id = ?1 AND role IN ('owner', 'admin') ORDER BY joined_at, user_id`;

/**
 * A page of a conversation's members (?1) after a user id (?2), at most ?3: a range of the primary key
 * (conversation_id, user_id) in its order, nothing sorted and nothing before the cursor read.
 */
export const PAGE_AFTER_QUERY = `SELECT * FROM participants WHERE conversation_id = ?1 AND user_id > ?2
  ORDER BY user_id LIMIT ?3`;

/**
 * A message's receipts counted (?1 conversation, ?2 its seq, ?3 its sender; receipt-counts.ts), in one
 * statement (one state of the members): each count a range of an index (participants_joined,
 * participants_delivered, participants_read) at or after the seq, counted entry by entry within the index,
 * no row read; the member count kept with the conversation, and the sender's row by its key. SQLite has no
 * counted b-trees: a count costs its range, some 30 ns an entry (3 ms for 100,000), in C. Counts kept by
 * message would cost every receipt, the hottest write there is, a write more for each message it passes.
 */
export const RECEIPT_RANGES = `SELECT c.member_count AS members,
    (SELECT COUNT(*) FROM participants INDEXED BY participants_joined
      WHERE conversation_id = ?1 AND joined_seq >= ?2) AS joined,
    (SELECT COUNT(*) FROM participants INDEXED BY participants_delivered
      WHERE conversation_id = ?1 AND delivered_seq >= ?2) AS delivered,
    (SELECT COUNT(*) FROM participants INDEXED BY participants_read
      WHERE conversation_id = ?1 AND last_read_seq >= ?2) AS read,
    s.joined_seq, s.delivered_seq, s.last_read_seq
  FROM conversations c LEFT JOIN participants s ON s.conversation_id = c.id AND s.user_id = ?3
  WHERE c.id = ?1`;

type RangesRow = Omit<ReceiptRanges, "sender"> & {
  joined_seq: number | null;
  delivered_seq: number | null;
  last_read_seq: number | null;
};

/** A new member's positions, never below where they joined (ParticipantRecord.last_read_seq). */
const FROM_JOINED = "MAX($last_read_seq, $joined_seq), MAX($delivered_seq, $joined_seq)";

export function sqliteConversations(db: Database): ConversationsRepo {
  const insert = db.query(
    `INSERT INTO conversations (${NEW_COLUMNS}, num)
     VALUES ($id, $name, $topic, $conversation_type, $encrypted, $dm_key, $last_message_id,
       $last_activity, $last_seq, $message_count, $created_by, $created_at, $updated_at,
       (SELECT COALESCE(MAX(num), 0) + 1 FROM conversations))`,
  );
  const insertParticipant = db.query(
    `INSERT INTO participants (conversation_id, user_id, role, joined_at, joined_seq, last_read_seq,
       delivered_seq, delivered_at, read_at)
     VALUES ($conversation_id, $user_id, $role, $joined_at, $joined_seq, ${FROM_JOINED}, $delivered_at, $read_at)
     ON CONFLICT DO NOTHING`,
  );
  // Only into a conversation that exists: one deleted while the add was on its way would keep a member
  // row nobody sees, which would still count for the user's conversations and peers.
  const addToExisting = db.query(
    `INSERT INTO participants (conversation_id, user_id, role, joined_at, joined_seq, last_read_seq,
       delivered_seq, delivered_at, read_at)
     SELECT $conversation_id, $user_id, $role, $joined_at, $joined_seq, ${FROM_JOINED}, $delivered_at, $read_at
     WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $conversation_id
       AND ($max_members IS NULL OR member_count < $max_members))
     ON CONFLICT DO NOTHING`,
  );
  const exists = db.query<{ one: number }, [string]>("SELECT 1 AS one FROM conversations WHERE id = ?");
  const byId = db.query<ConversationRow, [string]>(`SELECT ${COLUMNS} FROM conversations WHERE id = ?`);
  const byDmKey = db.query<ConversationRow, [string]>(
    `SELECT ${COLUMNS} FROM conversations WHERE dm_key = ?`,
  );
  const cColumns = COLUMNS.split(", ")
    .map((c) => `c.${c}`)
    .join(", ");
  const listFirst = db.query<ConversationRow, [string, number]>(
    `SELECT ${cColumns} FROM participants p JOIN conversations c ON c.id = p.conversation_id
     WHERE p.user_id = ? ORDER BY c.last_activity DESC, c.id DESC LIMIT ?`,
  );
  const listAfter = db.query<ConversationRow, [string, number, number, string, number]>(
    `SELECT ${cColumns} FROM participants p JOIN conversations c ON c.id = p.conversation_id
     WHERE p.user_id = ? AND (c.last_activity < ? OR (c.last_activity = ? AND c.id < ?))
     ORDER BY c.last_activity DESC, c.id DESC LIMIT ?`,
  );
  // In the participants_user index's order (user_id, conversation_id): nothing sorted.
  const byIdFirst = db.query<ConversationRow, [string, number]>(
    `SELECT ${cColumns} FROM participants p JOIN conversations c ON c.id = p.conversation_id
     WHERE p.user_id = ? ORDER BY p.conversation_id LIMIT ?`,
  );
  const byIdAfter = db.query<ConversationRow, [string, string, number]>(
    `SELECT ${cColumns} FROM participants p JOIN conversations c ON c.id = p.conversation_id
     WHERE p.user_id = ? AND p.conversation_id > ? ORDER BY p.conversation_id LIMIT ?`,
  );
  // Both from the participants_user index alone: no conversation row read, nothing sorted.
  const idsForUser = db.query<{ conversation_id: string }, [string]>(
    "SELECT conversation_id FROM participants WHERE user_id = ?",
  );
  const memberships = db.query<MembershipRecord, [string, string]>(MEMBERSHIPS_QUERY);
  const lastSeqs = db.query<{ id: string; last_seq: number }, [string]>(
    "SELECT id, last_seq FROM conversations WHERE id IN (SELECT value FROM json_each(?))",
  );
  const peersOf = db.query<{ user_id: string }, [string]>(PEERS_OF);
  const peersAmong = db.query<{ user_id: string }, [string, string]>(PEERS_AMONG);
  const participants = db.query<ParticipantRecord, [string]>(
    "SELECT * FROM participants WHERE conversation_id = ? ORDER BY joined_at, user_id",
  );
  const managers = db.query<ParticipantRecord, [string]>(MANAGERS_QUERY);
  const pageFirst = db.query<ParticipantRecord, [string, number]>(
    "SELECT * FROM participants WHERE conversation_id = ? ORDER BY user_id LIMIT ?",
  );
  const pageAfter = db.query<ParticipantRecord, [string, string, number]>(PAGE_AFTER_QUERY);
  const participant = db.query<ParticipantRecord, [string, string]>(
    "SELECT * FROM participants WHERE conversation_id = ? AND user_id = ?",
  );
  const floor = db.query<{ read: number; user_id: string; seq: number }, [string]>(FLOOR_QUERY);
  const receiptRanges = db.query<RangesRow, [string, number, string]>(RECEIPT_RANGES);
  // ?4 (keepOwner): an owner stops being one only while another owner remains; one statement, so two
  // owners stepping down at once cannot both see the other still there.
  const anotherOwner = `EXISTS (SELECT 1 FROM participants o
    WHERE o.conversation_id = ?2 AND o.user_id != ?3 AND o.role = 'owner')`;
  const setRole = db.query<ParticipantRecord, [string, string, string, number]>(
    `UPDATE participants SET role = ?1 WHERE conversation_id = ?2 AND user_id = ?3
       AND (?4 = 0 OR ?1 = 'owner' OR role != 'owner' OR ${anotherOwner})
     RETURNING *`,
  );
  const removeParticipant = db.query<never, [null, string, string, number]>(
    `DELETE FROM participants WHERE conversation_id = ?2 AND user_id = ?3
       AND (?4 = 0 OR role != 'owner' OR ${anotherOwner})`,
  );
  // SET expressions all see the old row, so the CASE compares against the value before the update.
  const markRead = db.query<ParticipantRecord, [number, number, string, string]>(
    `UPDATE participants SET
       read_at = CASE WHEN ?1 > last_read_seq THEN ?2 ELSE read_at END,
       delivered_at = CASE WHEN ?1 > delivered_seq THEN ?2 ELSE delivered_at END,
       last_read_seq = MAX(last_read_seq, ?1),
       delivered_seq = MAX(delivered_seq, ?1)
     WHERE conversation_id = ?3 AND user_id = ?4 RETURNING *`,
  );
  const markDelivered = db.query<ParticipantRecord, [number, number, string, string]>(
    `UPDATE participants SET
       delivered_at = CASE WHEN ?1 > delivered_seq THEN ?2 ELSE delivered_at END,
       delivered_seq = MAX(delivered_seq, ?1)
     WHERE conversation_id = ?3 AND user_id = ?4 RETURNING *`,
  );

  // Receipts come from every member's devices for every message they get (message_ack, message_read, a
  // history page read), so they share the group commit (group-commit.ts): one transaction per turn of
  // the event loop instead of a commit and an fsync each.
  type Receipt = { read: boolean; conversationId: string; userId: string; seq: number; now: number };
  const receipt = groupCommit(db, (r: Receipt) =>
    (r.read ? markRead : markDelivered).get(r.seq, r.now, r.conversationId, r.userId),
  );

  const create = db.transaction((conversation: NewConversation, members: ParticipantRecord[]) => {
    insert.run(bind({ ...conversation, encrypted: conversation.encrypted ? 1 : 0 }));
    for (const p of members) insertParticipant.run(bind(p));
  });
  const remove = db.transaction((id: string) => {
    db.query("DELETE FROM messages WHERE conv = (SELECT num FROM conversations WHERE id = ?)").run(id);
    afterMessagesDeleted(db);
    db.query("DELETE FROM participants WHERE conversation_id = ?").run(id);
    db.query("DELETE FROM conversations WHERE id = ?").run(id);
  });

  return {
    async create(conversation, members) {
      try {
        create(conversation, members);
      } catch (err) {
        if (err instanceof Error && err.message.includes("conversations.dm_key"))
          throw new DuplicateError("dm");
        throw err;
      }
    },
    async byId(id) {
      return toConversation(byId.get(id));
    },
    async byDmKey(key) {
      return toConversation(byDmKey.get(key));
    },
    async listForUser(userId, limit, before) {
      const rows = before
        ? listAfter.all(userId, before.last_activity, before.last_activity, before.id, limit)
        : listFirst.all(userId, limit);
      return rows.map((r) => toConversation(r) as ConversationRecord);
    },
    async listForUserById(userId, limit, afterId) {
      const rows =
        afterId === undefined ? byIdFirst.all(userId, limit) : byIdAfter.all(userId, afterId, limit);
      return rows.map((r) => toConversation(r) as ConversationRecord);
    },
    async idsForUser(userId) {
      return idsForUser.all(userId).map((r) => r.conversation_id);
    },
    async peersOf(userId) {
      return peersOf.all(userId).map((r) => r.user_id);
    },
    async memberships(userId, ids) {
      if (ids.length === 0) return [];
      return memberships.all(userId, JSON.stringify(ids));
    },

    async peersAmong(userId, ids) {
      if (ids.length === 0) return [];
      return peersAmong.all(userId, JSON.stringify(ids)).map((r) => r.user_id);
    },
    async lastSeqs(ids) {
      if (ids.length === 0) return new Map();
      return new Map(lastSeqs.all(JSON.stringify(ids)).map((r) => [r.id, r.last_seq]));
    },
    async update(id, patch: ConversationPatch) {
      const fields = (["name", "topic", "updated_at"] as const).filter((f) => patch[f] !== undefined);
      const values: Record<string, string | number | null> = { id };
      for (const f of fields) values[f] = patch[f] ?? null;
      db.query(`UPDATE conversations SET ${fields.map((f) => `${f} = $${f}`).join(", ")} WHERE id = $id`).run(
        values,
      );
      return toConversation(byId.get(id));
    },
    async delete(id) {
      remove(id);
    },
    async participants(conversationId) {
      return participants.all(conversationId);
    },
    async managers(conversationId) {
      return managers.all(conversationId);
    },
    async participantsPage(conversationId, limit, afterUserId) {
      return afterUserId === undefined
        ? pageFirst.all(conversationId, limit)
        : pageAfter.all(conversationId, afterUserId, limit);
    },
    async participant(conversationId, userId) {
      return participant.get(conversationId, userId);
    },
    async positionFloor(conversationId) {
      return floorFrom(floor.all(conversationId));
    },
    async receiptCounts(conversationId, seq, senderId) {
      const row = receiptRanges.get(conversationId, seq, senderId);
      if (!row) return { recipients: 0, delivered: 0, read: 0 };
      const { joined_seq, delivered_seq, last_read_seq, ...ranges } = row;
      const sender =
        joined_seq === null || delivered_seq === null || last_read_seq === null
          ? null
          : { joined_seq, delivered_seq, last_read_seq };
      return receiptCountsFrom({ ...ranges, sender }, seq);
    },
    async addParticipant(p, options) {
      // One statement: the count it compares is the one the triggers keep in the same write.
      const maxMembers = options?.maxMembers ?? null;
      if (addToExisting.run(bind({ ...p, max_members: maxMembers })).changes === 1) return true;
      if (!exists.get(p.conversation_id)) throw new MissingError("conversation", p.conversation_id);
      if (maxMembers === null || participant.get(p.conversation_id, p.user_id)) return false;
      throw new GroupFullError(p.conversation_id, maxMembers);
    },
    async setRole(conversationId, userId, role, options) {
      const keep = options?.keepOwner ? 1 : 0;
      const updated = setRole.get(role, conversationId, userId, keep);
      // Not changed yet still a member: only the last owner's guard refuses.
      if (!updated && keep && participant.get(conversationId, userId))
        throw new LastOwnerError(conversationId);
      return updated;
    },
    async removeParticipant(conversationId, userId, options) {
      const keep = options?.keepOwner ? 1 : 0;
      if (removeParticipant.run(null, conversationId, userId, keep).changes === 1) return true;
      if (keep && participant.get(conversationId, userId)) throw new LastOwnerError(conversationId);
      return false;
    },
    async markRead(conversationId, userId, seq, now) {
      return receipt({ read: true, conversationId, userId, seq, now });
    },
    async markDelivered(conversationId, userId, seq, now) {
      return receipt({ read: false, conversationId, userId, seq, now });
    },
  };
}
