// SQLite schema, applied in order; user_version records how far a database file has come.

import type { Database } from "bun:sqlite";
import { searchText, TOKEN_MARKS } from "../../lib/segment.ts";
import { nameKey } from "../../lib/text.ts";
import { clientKey } from "./client-key.ts";

/** SQL, or a function for a step SQL cannot do alone (it runs inside the migration's transaction). */
export type Migration = string | ((db: Database) => void);

export const MIGRATIONS: Migration[] = [
  `
  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    display_name_lower TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user',
    last_seen INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX users_display_name ON users(display_name_lower);

  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_name TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
  ) STRICT;
  CREATE INDEX sessions_user ON sessions(user_id, created_at);

  CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at INTEGER
  ) STRICT;
  CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

  CREATE TABLE magic_links (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
  ) STRICT;
  CREATE INDEX magic_links_expiry ON magic_links(expires_at);

  CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX login_failures_key ON login_failures(key, at);

  CREATE TABLE lockouts (
    key TEXT PRIMARY KEY,
    until INTEGER NOT NULL
  ) STRICT;
  `,
  `
  CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    name TEXT,
    topic TEXT,
    conversation_type TEXT NOT NULL,
    encrypted INTEGER NOT NULL,
    dm_key TEXT UNIQUE,
    last_message_id TEXT,
    last_activity INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX conversations_activity ON conversations(last_activity DESC, id DESC);

  CREATE TABLE participants (
    conversation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    last_read_seq INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL,
    delivered_at INTEGER,
    read_at INTEGER,
    PRIMARY KEY (conversation_id, user_id)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX participants_user ON participants(user_id, conversation_id);

  CREATE TABLE messages (
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    version_seq INTEGER NOT NULL,
    client_msg_id TEXT,
    content TEXT NOT NULL,
    message_type TEXT NOT NULL,
    reply_to TEXT,
    attachments TEXT NOT NULL,
    reactions TEXT NOT NULL,
    envelope TEXT,
    edited_at INTEGER,
    deleted INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE UNIQUE INDEX messages_seq ON messages(conversation_id, seq);
  CREATE INDEX messages_version ON messages(conversation_id, version_seq);
  CREATE UNIQUE INDEX messages_client_id ON messages(conversation_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

  -- Full-text search over message content (external content: the text lives once, in messages).
  CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
  CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
  END;
  CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
  END;
  CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
  END;
  `,
  `
  -- Search indexing leaves the append path: rows up to indexed_rowid are in messages_fts, later ones are
  -- indexed in batches (search-index.ts). Rows that exist now were indexed by the old insert trigger.
  CREATE TABLE search_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_rowid INTEGER NOT NULL
  ) STRICT;
  INSERT INTO search_state (id, indexed_rowid) SELECT 1, COALESCE(MAX(rowid), 0) FROM messages;

  -- Each trigger touches the index only for rows at or below the watermark: a row above it is indexed
  -- later with its content at that time, and an FTS5 'delete' of a row never indexed corrupts the index.
  -- The insert trigger normally never fires; it keeps a reused rowid (no AUTOINCREMENT: deleting a
  -- conversation can free the top rowids) indexed.
  DROP TRIGGER messages_fts_insert;
  DROP TRIGGER messages_fts_delete;
  DROP TRIGGER messages_fts_update;
  CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
  WHEN new.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1) BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
  END;
  CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
  WHEN old.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
  END;
  -- Every change rewrites content (a reaction too): re-index only when the text really changed.
  CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
  WHEN old.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1)
    AND new.content IS NOT old.content BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
  END;
  `,
  `
  -- Two indexes every append paid for (bench/LIMITS.md). conversations_activity served no query: a
  -- user's list reads their participant rows and sorts those few, yet every message moved its entry.
  DROP INDEX conversations_activity;
  -- Catch-up reads changes in version_seq order. A message nobody changed has version_seq = seq, so the
  -- seq index finds it; only changed messages (edits, deletes, reactions) need this index, and an append
  -- never enters it.
  DROP INDEX messages_version;
  CREATE INDEX messages_changed ON messages(conversation_id, version_seq) WHERE version_seq != seq;
  `,
  `
  -- A conversation's messages are found by a small integer, not its 20-character id: every append enters
  -- two indexes keyed by conversation (seq, client_msg_id), and with text keys they were over half the
  -- CPU of an append with many conversations active (bench/LIMITS.md). The number is a column of its
  -- own, not the rowid, which VACUUM may renumber; a new conversation takes MAX(num) + 1.
  ALTER TABLE conversations ADD COLUMN num INTEGER;
  UPDATE conversations SET num = rowid;
  CREATE UNIQUE INDEX conversations_num ON conversations(num);
  ALTER TABLE messages ADD COLUMN conv INTEGER NOT NULL DEFAULT 0;
  -- A message whose conversation is gone (none should be) gets a number no conversation has.
  UPDATE messages SET conv = COALESCE(
    (SELECT num FROM conversations c WHERE c.id = messages.conversation_id), -messages.rowid);
  DROP INDEX messages_seq;
  DROP INDEX messages_changed;
  CREATE UNIQUE INDEX messages_conv_seq ON messages(conv, seq);
  CREATE INDEX messages_changed ON messages(conv, version_seq) WHERE version_seq != seq;
  -- messages_client_id goes in migration 6.

  -- Appends no longer pay for an insert trigger that evaluated the search watermark on every row. It
  -- existed for rowids reused after the top rows were deleted; deleting a conversation now lowers the
  -- watermark to the highest rowid left (search-index.ts, afterMessagesDeleted), so a reused rowid is
  -- always above it; this does it once for what older versions left.
  DROP TRIGGER messages_fts_insert;
  UPDATE search_state SET indexed_rowid = MIN(indexed_rowid, (SELECT COALESCE(MAX(rowid), 0) FROM messages));
  `,
  (db) => {
    // Idempotent appends look a (sender_id, client_msg_id) up by a 53-bit number (client-key.ts) instead
    // of the two strings. Client ids are random (the SDK's are UUIDs), so every append entered the old
    // index at a random leaf, and each commit wrote every leaf it had touched to the WAL: half of an
    // append's commit (bench/LIMITS.md). The numbers make the index about a quarter of the size, so
    // more appends share a leaf and a commit writes fewer pages. Not UNIQUE: two pairs may share a
    // number, and the append compares the strings of the rows it finds.
    db.exec(`
      DROP INDEX messages_client_id;
      ALTER TABLE messages ADD COLUMN client_key INTEGER;
    `);
    // In rowid order, 10,000 rows a read, so that no read is open while its rows are updated.
    const rows = db.query<{ rowid: number; sender_id: string; client_msg_id: string }, [number]>(
      `SELECT rowid, sender_id, client_msg_id FROM messages
       WHERE rowid > ?1 AND client_msg_id IS NOT NULL ORDER BY rowid LIMIT 10000`,
    );
    const set = db.query<never, [number, number]>("UPDATE messages SET client_key = ?1 WHERE rowid = ?2");
    for (let after = 0, page = rows.all(after); page.length > 0; page = rows.all(after)) {
      for (const row of page) set.run(clientKey(row.sender_id, row.client_msg_id), row.rowid);
      after = page[page.length - 1]?.rowid ?? Number.MAX_SAFE_INTEGER;
    }
    db.exec(`
      CREATE INDEX messages_conv_client ON messages(conv, client_key) WHERE client_key IS NOT NULL;
    `);
  },
  `
  -- Search indexes each message's conversation number beside its text, so that a search in one
  -- conversation reads the postings of that conversation's messages, not every conversation's matches
  -- (a word in every message made one search rank the whole log: 74 ms over 300,000 messages, and the
  -- event loop waited). The index is built again from the messages, in the background, from the start.
  -- (No insert trigger since migration 5: a reused rowid is always above the watermark.)
  DROP TRIGGER messages_fts_delete;
  DROP TRIGGER messages_fts_update;
  DROP TABLE messages_fts;
  CREATE VIRTUAL TABLE messages_fts USING fts5(content, conv, content='messages', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
  UPDATE search_state SET indexed_rowid = 0;
  CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
  WHEN old.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, conv) VALUES ('delete', old.rowid, old.content, old.conv);
  END;
  CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
  WHEN old.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1)
    AND new.content IS NOT old.content BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, conv) VALUES ('delete', old.rowid, old.content, old.conv);
    INSERT INTO messages_fts(rowid, content, conv) VALUES (new.rowid, new.content, new.conv);
  END;
  `,
  `
  -- Where a member's part of the log starts (the conversation's last seq when they were added), so that a
  -- client that learns of a conversation it joined later starts there, not at its first message. Members
  -- from before knew no such point: 0, the start, as clients assumed until now. A constant default: no
  -- row is rewritten.
  ALTER TABLE participants ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- The status a user chose, kept while they are away (their status is offline then) and shown again when
  -- they connect. Users away or busy now chose it; an offline one may have chosen to appear offline or
  -- have no socket, which nothing recorded: online, the status a connecting user got until now.
  ALTER TABLE users ADD COLUMN chosen_status TEXT NOT NULL DEFAULT 'online';
  UPDATE users SET chosen_status = status WHERE status IN ('away', 'dnd');
  `,
  (db) => {
    // A display name is searched by its key in NFC (nameKey): one stored with decomposed accents kept a
    // key no composed query met. Keys are made again; only those that differ are written.
    rederive(db, "users", "display_name", "display_name_lower", nameKey);
  },
  `
  -- Accounts without a password (the owner of an email address that someone else signed up with signs in
  -- by magic link, and the password they did not set is removed), and when the owner of the address first
  -- proved it. SQLite cannot drop NOT NULL from a column: the table is made again, rows in rowid order.
  -- Accounts from before never proved their address (sign-up does not): none is marked verified.
  CREATE TABLE users_next (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    display_name_lower TEXT NOT NULL,
    password_hash TEXT,
    email_verified_at INTEGER,
    status TEXT NOT NULL,
    chosen_status TEXT NOT NULL DEFAULT 'online',
    role TEXT NOT NULL DEFAULT 'user',
    last_seen INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  INSERT INTO users_next (rowid, id, email, username, display_name, display_name_lower, password_hash,
    email_verified_at, status, chosen_status, role, last_seen, created_at, updated_at)
  SELECT rowid, id, email, username, display_name, display_name_lower, password_hash,
    NULL, status, chosen_status, role, last_seen, created_at, updated_at
  FROM users ORDER BY rowid;
  DROP TABLE users;
  ALTER TABLE users_next RENAME TO users;
  CREATE INDEX users_display_name ON users(display_name_lower);
  `,
  `
  -- A message's status needs the lowest delivered and read positions among the members other than its
  -- sender: these find a conversation's two lowest of each in a few index entries, where a history page
  -- of a channel of 10,000 members read all 10,000 rows. (On a WITHOUT ROWID table an index entry holds
  -- the primary key too: ordered by position, then user id.)
  CREATE INDEX participants_delivered ON participants(conversation_id, delivered_seq);
  CREATE INDEX participants_read ON participants(conversation_id, last_read_seq);
  `,
  `
  -- Where a dm's or group's receipts stand (MembershipRecord.receipts_version): counted by the triggers
  -- below in the transaction of each change, so that a resume reads every member's positions again only
  -- once they have changed (realtime/receipts-memo.ts). A channel's members are not told each other's
  -- receipts: its count is not kept, and a read there writes nothing more.
  ALTER TABLE conversations ADD COLUMN receipts_version INTEGER NOT NULL DEFAULT 0;
  CREATE TRIGGER participants_moved AFTER UPDATE OF delivered_seq, last_read_seq ON participants
  WHEN new.delivered_seq != old.delivered_seq OR new.last_read_seq != old.last_read_seq BEGIN
    UPDATE conversations SET receipts_version = receipts_version + 1
    WHERE id = new.conversation_id AND conversation_type != 'channel';
  END;
  CREATE TRIGGER participants_added AFTER INSERT ON participants BEGIN
    UPDATE conversations SET receipts_version = receipts_version + 1
    WHERE id = new.conversation_id AND conversation_type != 'channel';
  END;
  CREATE TRIGGER participants_removed AFTER DELETE ON participants BEGIN
    UPDATE conversations SET receipts_version = receipts_version + 1
    WHERE id = old.conversation_id AND conversation_type != 'channel';
  END;
  `,
  `
  -- A channel's owners and admins, the peers of each of its readers (PEERS_OF), in a few index entries:
  -- each reader's connect read every member of the channel to find them.
  CREATE INDEX participants_role ON participants(conversation_id, role);
  `,
  `
  -- How many members each conversation has (ConversationRecord.member_count), read with it: a channel's
  -- view counted 10,000 members on each read, a list of 50 such 500,000. Kept by the triggers that count
  -- receipts changes, in the transaction of each member added or removed, so it cannot drift from the rows;
  -- a channel's row is written by these now too (members come and go rarely; its receipts still write none).
  ALTER TABLE conversations ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;
  UPDATE conversations SET member_count =
    (SELECT COUNT(*) FROM participants p WHERE p.conversation_id = conversations.id);
  DROP TRIGGER participants_added;
  DROP TRIGGER participants_removed;
  CREATE TRIGGER participants_added AFTER INSERT ON participants BEGIN
    UPDATE conversations SET member_count = member_count + 1,
      receipts_version = receipts_version + (conversation_type != 'channel')
    WHERE id = new.conversation_id;
  END;
  CREATE TRIGGER participants_removed AFTER DELETE ON participants BEGIN
    UPDATE conversations SET member_count = member_count - 1,
      receipts_version = receipts_version + (conversation_type != 'channel')
    WHERE id = old.conversation_id;
  END;
  `,
  (db) => {
    // Chinese, Japanese, Thai, Lao, Khmer and Burmese put no space between words, and the tokenizer took a
    // sentence of them as one word that no query met. Messages holding such characters keep a copy of
    // their text with each of those characters a token of its own (lib/segment.ts: searchText), which
    // the index reads in place of the content through messages_search. Only those messages have a copy:
    // every message is read once here, in rowid order, 10,000 a read.
    db.exec("ALTER TABLE messages ADD COLUMN search_text TEXT");
    writeSearchCopies(db);
    // The index is built again from the messages, in the background, from the start (as migration 7 did),
    // over the view. Its tokenizer keeps the vowel signs of Thai, Lao, Khmer and Myanmar inside tokens
    // (TOKEN_MARKS); every other character is split and folded as before. The triggers keep what the
    // index holds (the copy, where there is one) in step with the rows at or below the watermark.
    db.exec(`
      DROP TRIGGER messages_fts_delete;
      DROP TRIGGER messages_fts_update;
      DROP TABLE messages_fts;
      CREATE VIEW messages_search (rid, content, conv) AS
        SELECT rowid, COALESCE(search_text, content), conv FROM messages;
    `);
    indexSearchCopies(db, `unicode61 remove_diacritics 2 tokenchars '${TOKEN_MARKS}'`);
  },
  `
  -- A message's receipts counted (RECEIPT_RANGES): the members who joined at or after it are not among
  -- those it was sent to, and are counted here, in as many index entries as there are of them, not among
  -- all the members. joined_seq never changes: a member's receipts write nothing to this index.
  CREATE INDEX participants_joined ON participants(conversation_id, joined_seq);
  -- A member's positions are never below joined_seq (the counts take each who joined after a message as
  -- having it). The API adds members so; a row below it, written otherwise, is raised once here, as an add
  -- raises one now.
  UPDATE participants SET last_read_seq = MAX(last_read_seq, joined_seq),
    delivered_seq = MAX(delivered_seq, joined_seq)
  WHERE last_read_seq < joined_seq OR delivered_seq < joined_seq;
  `,
  (db) => {
    // Combining marks split words: vocalized Arabic (كَتَبَ) and pointed Hebrew were pieces between their
    // marks, never the word written without them, and Devanagari and the other Brahmic scripts were cut at
    // every vowel sign and virama. Now the index takes every mark as part of its word, and the marks search
    // drops (lib/segment.ts: the diacritics, the other Arabic and Hebrew marks) are out of the copy that
    // messages holding them now keep (searchText). Each message's copy is made again (the rule for the
    // copies of migration 16 changed too, where such marks sit among unspaced scripts), every message read
    // once, in rowid order, 10,000 a read; the triggers go first, so that no write here touches the index.
    db.exec(`
      DROP TRIGGER messages_fts_delete;
      DROP TRIGGER messages_fts_update;
      DROP TABLE messages_fts;
    `);
    writeSearchCopies(db);
    // Built again from the start, in the background, as migration 16 did: every mark is a token character
    // (categories adds M* to the default letters, digits and private use), and the Latin accents are
    // still folded away (remove_diacritics 2).
    indexSearchCopies(db, "unicode61 remove_diacritics 2 categories 'L* N* Co M*'");
  },
  `
  -- What proved who opened each session: only one opened by a magic link sets an account's first password
  -- without the current one. Sessions from before recorded nothing: 'password', the one that may not (an
  -- owner who signed in by link and has set no password yet signs in by link again to set one). A constant
  -- default: no row is rewritten.
  ALTER TABLE sessions ADD COLUMN signed_in_by TEXT NOT NULL DEFAULT 'password';
  `,
  `
  -- The tokens of the mail that proves an account's address at sign-up, in a table of their own (the
  -- columns of magic_links): neither kind is ever taken for the other. Empty: nothing to copy.
  CREATE TABLE email_verifications (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
  ) STRICT;
  CREATE INDEX email_verifications_expiry ON email_verifications(expires_at);
  `,
];

/**
 * Sets column `to` of every row of `table` to `derive` of its column `from`, writing only the rows where
 * it differs: every row read once, in rowid order, 10,000 a read (a migration's rewrite of a value made
 * from another, by a rule that changed).
 */
function rederive(
  db: Database,
  table: "users" | "messages",
  from: string,
  to: string,
  derive: (value: string) => string | null,
) {
  const rows = db.query<{ rowid: number; from: string; to: string | null }, [number]>(
    `SELECT rowid, ${from} AS "from", ${to} AS "to" FROM ${table} WHERE rowid > ?1 ORDER BY rowid LIMIT 10000`,
  );
  const set = db.query<never, [string | null, number]>(`UPDATE ${table} SET ${to} = ?1 WHERE rowid = ?2`);
  for (let after = 0, page = rows.all(after); page.length > 0; page = rows.all(after)) {
    for (const row of page) {
      const value = derive(row.from);
      if (value !== row.to) set.run(value, row.rowid);
    }
    after = page[page.length - 1]?.rowid ?? Number.MAX_SAFE_INTEGER;
  }
}

/** Each message's search copy as searchText makes it now, null where it needs none (migrations 16, 18). */
const writeSearchCopies = (db: Database) => rederive(db, "messages", "content", "search_text", searchText);

/**
 * The search index over messages_search (each message's copy where it has one, else its content) with
 * `tokenize`, built again from the start in the background (search-index.ts, from the watermark reset
 * here), and the triggers that keep what it holds in step with the rows at or below the watermark
 * (migrations 16 and 18; the index and its triggers are dropped before).
 */
function indexSearchCopies(db: Database, tokenize: string) {
  db.exec(`
    CREATE VIRTUAL TABLE messages_fts USING fts5(content, conv, content='messages_search', content_rowid='rid',
      tokenize="${tokenize}");
    UPDATE search_state SET indexed_rowid = 0;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1) BEGIN
      INSERT INTO messages_fts(messages_fts, rowid, content, conv)
        VALUES ('delete', old.rowid, COALESCE(old.search_text, old.content), old.conv);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, search_text ON messages
    WHEN old.rowid <= (SELECT indexed_rowid FROM search_state WHERE id = 1)
      AND COALESCE(new.search_text, new.content) IS NOT COALESCE(old.search_text, old.content) BEGIN
      INSERT INTO messages_fts(messages_fts, rowid, content, conv)
        VALUES ('delete', old.rowid, COALESCE(old.search_text, old.content), old.conv);
      INSERT INTO messages_fts(rowid, content, conv)
        VALUES (new.rowid, COALESCE(new.search_text, new.content), new.conv);
    END;
  `);
}

/** Applies one migration (the caller runs it in a transaction and records the version). */
export function applyMigration(db: Database, migration: Migration) {
  if (typeof migration === "string") db.exec(migration);
  else migration(db);
}

/** Records are plain objects of bindable values; their interfaces just lack an index signature. */
export const bind = <T extends object>(record: T) =>
  record as unknown as Record<string, string | number | null>;
