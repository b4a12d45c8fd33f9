// A database file as an older Parley left it: migrated up to a given schema version only, and rows
// written the way that version wrote them.

import { Database } from "bun:sqlite";
import { applyMigration, MIGRATIONS } from "../../src/store/sqlite/schema.ts";

/** When the old rows were written. */
export const T0 = 1_700_000_000_000;

/** Opens `path` with the first `version` migrations applied and user_version set to match. */
export function databaseAt(path: string, version: number): Database {
  const db = new Database(path, { strict: true });
  for (const [v, migration] of MIGRATIONS.slice(0, version).entries()) {
    applyMigration(db, migration);
    db.exec(`PRAGMA user_version = ${v + 1}`);
  }
  return db;
}

/** The names of the database's indexes or triggers (SQLite's own automatic indexes left out). */
export const schemaNames = (db: Database, type: "index" | "trigger") =>
  db
    .query<{ name: string }, [string]>(
      "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'",
    )
    .all(type)
    .map((r) => r.name);

/** A group made by u-alice at T0, `lastSeq` messages in; `num` only from schema version 5 on. */
export function oldConversation(db: Database, id: string, lastSeq: number, num?: number) {
  const withNum = num !== undefined;
  db.query(
    `INSERT INTO conversations (id, name, topic, conversation_type, encrypted, dm_key, last_message_id,
       last_activity, last_seq, message_count, created_by, created_at, updated_at${withNum ? ", num" : ""})
     VALUES (?1, ?1, NULL, 'group', 0, NULL, NULL, ${T0}, ?2, ?2, 'u-alice', ${T0}, ${T0}${withNum ? ", ?3" : ""})`,
  ).run(...(withNum ? [id, lastSeq, num] : [id, lastSeq]));
}

export interface OldMessage {
  id: string;
  conversation_id: string;
  seq: number;
  /** seq when not given: never changed. */
  version_seq?: number;
  sender_id?: string;
  client_msg_id?: string | null;
  content?: string;
  edited_at?: number | null;
  /** The conversation's number: only from schema version 5 on. */
  conv?: number;
}

/** Text messages, sent at T0 (by u-alice unless told), in one transaction. */
export function oldMessages(db: Database, rows: OldMessage[]) {
  const withConv = rows.some((r) => r.conv !== undefined);
  const insert = db.query(
    `INSERT INTO messages (id, conversation_id, sender_id, seq, version_seq, client_msg_id, content,
       message_type, reply_to, attachments, reactions, envelope, edited_at, deleted, created_at, updated_at
       ${withConv ? ", conv" : ""})
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'text', NULL, '[]', '[]', NULL, ?8, 0, ${T0}, ${T0}
       ${withConv ? ", ?9" : ""})`,
  );
  db.transaction(() => {
    for (const r of rows) {
      const values = [
        r.id,
        r.conversation_id,
        r.sender_id ?? "u-alice",
        r.seq,
        r.version_seq ?? r.seq,
        r.client_msg_id ?? null,
        r.content ?? "old",
        r.edited_at ?? null,
      ];
      insert.run(...(withConv ? [...values, r.conv ?? 0] : values));
    }
  })();
}
