// The conversation log on SQLite: seq allocation, idempotent append, versioned changes, history
// pages, catch-up events and full-text search (FTS5, indexed off the append path by search-index.ts).

import type { Database } from "bun:sqlite";
import { searchText } from "../../lib/segment.ts";
import { quotedTerms } from "../search.ts";
import {
  type AppendResult,
  type MessageChange,
  type MessageRecord,
  type MessagesRepo,
  MissingError,
} from "../types.ts";
import { clientKey } from "./client-key.ts";
import { groupCommit } from "./group-commit.ts";
import { ReadsMemo, rowBytes } from "./reads-memo.ts";
import type { SearchIndex } from "./search-index.ts";

type MessageRow = Omit<MessageRecord, "attachments" | "reactions" | "envelope" | "deleted"> & {
  attachments: string;
  reactions: string;
  envelope: string | null;
  deleted: number;
};

const toMessage = (row: MessageRow): MessageRecord => ({
  ...row,
  attachments: JSON.parse(row.attachments),
  reactions: JSON.parse(row.reactions),
  envelope: row.envelope === null ? null : JSON.parse(row.envelope),
  deleted: row.deleted === 1,
});

/**
 * The messages indexes key a conversation by its number (conversations.num, schema.ts migration 5); a
 * query names the conversation by id and this finds the number once, before the index search.
 */
const CONV = "(SELECT num FROM conversations WHERE id = ?1)";

/**
 * Changes after a version_seq, in order (?1 conversation, ?2 after, ?3 limit): messages unchanged since
 * they were sent (version_seq = seq, found by the seq index) merged with changed ones (the partial
 * messages_changed index, which appends never enter).
 */
export const eventsQuery = (columns: string) =>
  `SELECT * FROM (SELECT ${columns} FROM messages
     WHERE conv = ${CONV} AND seq > ?2 AND version_seq = seq ORDER BY seq LIMIT ?3)
   UNION ALL
   SELECT * FROM (SELECT ${columns} FROM messages
     WHERE conv = ${CONV} AND version_seq > ?2 AND version_seq != seq ORDER BY version_seq LIMIT ?3)
   ORDER BY version_seq LIMIT ?3`;

/**
 * A stored message with a client id (?1 conversation, ?2 client key, ?3 sender, ?4 client_msg_id): found
 * by its key (client-key.ts), then told apart from another pair that shares the key.
 */
export const clientKeyQuery = (columns: string) =>
  `SELECT ${columns} FROM messages
   WHERE conv = ${CONV} AND client_key = ?2 AND sender_id = ?3 AND client_msg_id = ?4`;

export function sqliteMessages(
  db: Database,
  searchIndex: SearchIndex,
  /** Appends per transaction, at most (group-commit.ts has the default). */
  maxBatch?: number,
): MessagesRepo {
  const COLUMNS =
    "id, conversation_id, sender_id, seq, version_seq, client_msg_id, content, message_type, reply_to, " +
    "attachments, reactions, envelope, edited_at, deleted, created_at, updated_at";
  const byClientKey = db.query<MessageRow, [string, number, string, string]>(clientKeyQuery(COLUMNS));
  const allocate = db.query<{ last_seq: number; num: number }, [string, number, number, string]>(
    `UPDATE conversations SET last_seq = last_seq + 1, message_count = message_count + ?2,
       last_activity = MAX(last_activity, ?3),
       last_message_id = CASE WHEN ?2 = 1 THEN ?4 ELSE last_message_id END
     WHERE id = ?1 RETURNING last_seq, num`,
  );
  const byId = db.query<MessageRow, [string]>(`SELECT ${COLUMNS} FROM messages WHERE id = ?`);
  const latest = db.query<MessageRow, [string, number]>(
    `SELECT ${COLUMNS} FROM messages WHERE conv = ${CONV} ORDER BY seq DESC LIMIT ?2`,
  );
  const before = db.query<MessageRow, [string, number, number]>(
    `SELECT ${COLUMNS} FROM messages WHERE conv = ${CONV} AND seq < ?2 ORDER BY seq DESC LIMIT ?3`,
  );
  const after = db.query<MessageRow, [string, number, number]>(
    `SELECT ${COLUMNS} FROM messages WHERE conv = ${CONV} AND seq > ?2 ORDER BY seq ASC LIMIT ?3`,
  );
  const between = db.query<MessageRow, [string, number, number, number]>(
    `SELECT ${COLUMNS} FROM messages WHERE conv = ${CONV} AND seq > ?2 AND seq < ?3 ORDER BY seq ASC LIMIT ?4`,
  );
  const events = db.query<MessageRow, [string, number, number]>(eventsQuery(COLUMNS));
  const version = db.query<{ last_seq: number; created_at: number }, [string]>(
    "SELECT last_seq, created_at FROM conversations WHERE id = ?",
  );
  const memo = new ReadsMemo();
  /**
   * A read of the conversation's log (`name` says which, with its arguments; `rows` makes it), answered
   * from the memo while the conversation has not changed since (reads-memo.ts). The conversation's
   * last_seq is read first, which is what makes keeping the answer safe beside other writers; its
   * created_at tells a conversation from one deleted before it under the same id (which starts again at
   * seq 0). Each caller gets an array of its own.
   */
  const kept = (conversationId: string, name: string, rows: () => MessageRow[]): MessageRecord[] => {
    const current = version.get(conversationId);
    if (!current) return [];
    const conversation = `${conversationId}\u0000${current.created_at}`;
    const known = memo.get(conversation, current.last_seq, name);
    if (known) return [...known];
    const read = rows();
    const records = read.map(toMessage);
    memo.set(
      conversation,
      current.last_seq,
      name,
      records,
      read.reduce((n, row) => n + rowBytes(row), 0),
    );
    return [...records];
  };
  // The match names the conversation's number (an indexed column of messages_fts, schema.ts migration 7)
  // and its words in the content column, so that the index yields that conversation's matches only; bm25
  // weighs the content alone. System messages are JSON records of changes, not text anyone wrote.
  const search = db.query<MessageRow, [string, string, number]>(
    `SELECT ${COLUMNS.split(", ")
      .map((c) => `m.${c}`)
      .join(", ")}
     FROM messages_fts f JOIN messages m ON m.rowid = f.rowid
     WHERE messages_fts MATCH 'conv : "' || COALESCE(${CONV.replace("?1", "?2")}, 0) || '" AND content : (' || ?1 || ')'
       AND m.conversation_id = ?2 AND m.deleted = 0 AND m.message_type != 'system'
     ORDER BY bm25(messages_fts, 1.0, 0.0) LIMIT ?3`,
  );

  // search_text goes with the content it was made from (a trigger then indexes the text again: schema.ts).
  const update = db.query(
    `UPDATE messages SET content = $content, search_text = $search_text, attachments = $attachments,
       reactions = $reactions, edited_at = $edited_at, deleted = $deleted, updated_at = $updated_at,
       version_seq = $version_seq
     WHERE id = $id`,
  );

  const countUnread = db.query<{ n: number }, [string, number, string]>(
    `SELECT COUNT(*) AS n FROM messages WHERE conv = ${CONV} AND seq > ?2 AND sender_id != ?3
       AND deleted = 0 AND message_type != 'system'`,
  );

  type Draft = Omit<MessageRecord, "seq" | "version_seq">;
  // A client_msg_id already stored is looked for first; then the conversation's next seq is taken (no
  // row: the conversation does not exist) and the message stored under it, in the same transaction.
  // Bound by position, in the order of the columns below. search_text: what search indexes in place of
  // the content, for text of scripts written without spaces (lib/segment.ts); null for any other.
  const insert = db.query<never, (string | number | null)[]>(
    `INSERT INTO messages (id, conversation_id, sender_id, client_msg_id, content, message_type, reply_to,
       attachments, reactions, envelope, edited_at, deleted, created_at, updated_at, seq, version_seq, conv,
       client_key, search_text)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17, ?18)`,
  );
  const appendOne = (draft: Draft): AppendResult => {
    const key = draft.client_msg_id === null ? null : clientKey(draft.sender_id, draft.client_msg_id);
    if (key !== null) {
      const existing = byClientKey.get(
        draft.conversation_id,
        key,
        draft.sender_id,
        draft.client_msg_id as string,
      );
      if (existing) return { status: "duplicate", message: toMessage(existing) };
    }
    const allocated = allocate.get(draft.conversation_id, 1, draft.created_at, draft.id);
    if (!allocated) throw new MissingError("conversation", draft.conversation_id);
    insert.run(
      draft.id,
      draft.conversation_id,
      draft.sender_id,
      draft.client_msg_id,
      draft.content,
      draft.message_type,
      draft.reply_to,
      JSON.stringify(draft.attachments),
      JSON.stringify(draft.reactions),
      draft.envelope === null ? null : JSON.stringify(draft.envelope),
      draft.edited_at,
      draft.deleted ? 1 : 0,
      draft.created_at,
      draft.updated_at,
      allocated.last_seq,
      allocated.num,
      key,
      searchText(draft.content),
    );
    return {
      status: "created",
      message: { ...draft, seq: allocated.last_seq, version_seq: allocated.last_seq },
    };
  };
  // One transaction per batch of appends (group-commit.ts): the commit is paid once per batch.
  const append = groupCommit(db, appendOne, { maxBatch, afterCommit: () => searchIndex.poke() });

  const changeOne = ({ id, input }: { id: string; input: MessageChange }): MessageRecord | null => {
    const row = byId.get(id);
    if (!row) return null;
    const current = toMessage(row);
    const patch = typeof input === "function" ? input(current) : input;
    if (patch === null) return current;
    const allocated = allocate.get(row.conversation_id, 0, patch.updated_at, id);
    if (!allocated) return null;
    const next: MessageRecord = { ...current, version_seq: allocated.last_seq };
    // Only the fields given a value: an undefined one leaves the stored value alone.
    for (const [key, value] of Object.entries(patch)) {
      if (value !== undefined) Object.assign(next, { [key]: value });
    }
    update.run({
      id,
      content: next.content,
      search_text: searchText(next.content),
      attachments: JSON.stringify(next.attachments),
      reactions: JSON.stringify(next.reactions),
      edited_at: next.edited_at,
      deleted: next.deleted ? 1 : 0,
      updated_at: next.updated_at,
      version_seq: next.version_seq,
    });
    return next;
  };
  // Edits, deletes and reactions share a group commit as appends do (a busy group reacts a lot).
  const change = groupCommit(db, changeOne);

  return {
    async append(draft) {
      return append(draft);
    },
    async change(id, input) {
      return change({ id, input });
    },
    async byId(id) {
      const row = byId.get(id);
      return row ? toMessage(row) : null;
    },
    async byClientId(conversationId, senderId, clientMsgId) {
      const row = byClientKey.get(conversationId, clientKey(senderId, clientMsgId), senderId, clientMsgId);
      return row ? toMessage(row) : null;
    },
    async page(conversationId, { before: b, after: a, limit }) {
      if (a !== undefined && b !== undefined) return between.all(conversationId, a, b, limit).map(toMessage);
      if (a !== undefined) return after.all(conversationId, a, limit).map(toMessage);
      if (b !== undefined) return before.all(conversationId, b, limit).reverse().map(toMessage);
      // The latest page, which every member opening the conversation reads, may be kept; a page further
      // back is asked for again too rarely to be worth the memory (reads-memo.ts).
      return kept(conversationId, `latest:${limit}`, () => latest.all(conversationId, limit).reverse());
    },
    async events(conversationId, afterSeq, limit) {
      return kept(conversationId, `events:${afterSeq}:${limit}`, () =>
        events.all(conversationId, afterSeq, limit),
      );
    },
    async countUnread(conversationId, afterSeq, userId) {
      return countUnread.get(conversationId, afterSeq, userId)?.n ?? 0;
    },
    async search(conversationId, text, limit) {
      const query = quotedTerms(text);
      if (!query) return [];
      await searchIndex.catchUp();
      return search.all(query, conversationId, limit).map(toMessage);
    },
  };
}
