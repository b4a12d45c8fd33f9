// SQLite search indexing off the append path: search stays read-your-writes while a background indexer
// moves the search_state watermark, across edits, deletes, reopen, a migrated old database and failures.

import { Database } from "bun:sqlite";
import { afterAll, afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { applyMigration, MIGRATIONS } from "../../src/store/sqlite/schema.ts";
import { SEARCH_INDEX_DEFAULTS, sqliteSearchIndex } from "../../src/store/sqlite/search-index.ts";
import type { MessageRecord, Store } from "../../src/store/types.ts";
import { waitFor } from "../helpers.ts";
import { conversation, draft } from "./conversations-contract.ts";
import { databaseAt, oldConversation, oldMessages, T0 } from "./sqlite-old.ts";

const dir = mkdtempSync(join(tmpdir(), "parley-search-"));
let files = 0;
const freshFile = () => join(dir, `search-${++files}.db`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Everything a test opened, closed after it (closing twice is harmless for both). */
const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});
const open = (path: string) => {
  const store = openSqliteStore(path);
  opened.push(store);
  return store;
};
/** A second connection on the file, to look at what the store wrote without going through it. */
const inspect = (path: string) => {
  const db = new Database(path, { strict: true });
  opened.push(db);
  return db;
};

const watermark = (db: Database) =>
  db
    .query<{ indexed: number; top: number }, []>(
      "SELECT indexed_rowid AS indexed, (SELECT MAX(rowid) FROM messages) AS top FROM search_state",
    )
    .get();
const indexedRowids = (db: Database, word: string) =>
  db
    .query<{ rowid: number }, [string]>("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?")
    .all(word)
    .map((r) => r.rowid);
/** rank = 1 checks the index against the content table too, not only against itself. */
const checkIntegrity = (db: Database) =>
  db.exec("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");

async function group(store: Store, id: string) {
  await store.conversations.create(conversation(id, { name: id }), []);
}

async function say(store: Store, conversationId: string, content: string): Promise<MessageRecord> {
  return (await store.messages.append(draft(conversationId, "u-alice", { content }))).message;
}

const found = async (store: Store, text: string, conversationId = "c-1") =>
  (await store.messages.search(conversationId, text, 50)).map((m) => m.id).sort();

describe("sqlite search indexing", () => {
  it("finds messages the moment their appends resolve, several appended in the same tick", async () => {
    const path = freshFile();
    const store = open(path);
    await group(store, "c-1");
    const [a, b, c] = await Promise.all([
      say(store, "c-1", "apple pie"),
      say(store, "c-1", "banana split"),
      say(store, "c-1", "apple crumble"),
    ]);
    const before = watermark(inspect(path));
    expect(before?.indexed).toBeLessThan(before?.top ?? 0); // still waiting for the indexer
    expect(await found(store, "apple")).toEqual([a.id, c.id].sort());
    expect(await found(store, "banana")).toEqual([b.id]);
    const d = await say(store, "c-1", "cherry tart");
    expect(await found(store, "cherry")).toEqual([d.id]);
  });

  it("searches current content only, whether a message was edited before or after it was indexed", async () => {
    const path = freshFile();
    const store = open(path);
    const db = inspect(path);
    await group(store, "c-1");
    const early = await say(store, "c-1", "original damson");
    await store.messages.change(early.id, { content: "edited elderberry", updated_at: T0 + 100 });
    expect(indexedRowids(db, "damson")).toEqual([]); // edited while above the watermark
    const late = await say(store, "c-1", "original fig");
    expect(await found(store, "fig")).toEqual([late.id]); // indexes both
    await store.messages.change(late.id, { content: "edited grape", updated_at: T0 + 101 });
    // A change that leaves the text alone (a reaction) keeps it searchable.
    await store.messages.change(late.id, {
      reactions: [{ emoji: "👍", user_id: "u-bob" }],
      updated_at: T0 + 102,
    });

    expect(await found(store, "damson")).toEqual([]);
    expect(await found(store, "elderberry")).toEqual([early.id]);
    expect(await found(store, "fig")).toEqual([]);
    expect(await found(store, "grape")).toEqual([late.id]);
    expect(await found(store, "original")).toEqual([]);
    expect(await found(store, "edited")).toEqual([early.id, late.id].sort());
    checkIntegrity(db);
  });

  it("never finds a deleted message, tombstoned before or after it was indexed", async () => {
    const path = freshFile();
    const store = open(path);
    const db = inspect(path);
    await group(store, "c-1");
    const tombstone = { content: "", deleted: true, updated_at: T0 + 100 };
    const early = await say(store, "c-1", "secret honeydew");
    await store.messages.change(early.id, tombstone);
    const late = await say(store, "c-1", "secret kiwi");
    const kept = await say(store, "c-1", "secret lime");
    expect(await found(store, "secret")).toEqual([late.id, kept.id].sort());
    await store.messages.change(late.id, tombstone);
    // Deleted but content kept: the deleted flag alone hides it.
    await store.messages.change(kept.id, { deleted: true, updated_at: T0 + 101 });

    expect(await found(store, "secret")).toEqual([]);
    expect(await found(store, "honeydew")).toEqual([]);
    expect(await found(store, "kiwi")).toEqual([]);
    checkIntegrity(db);
  });

  it("keeps the index whole when deleted conversations free rowids that are then reused", async () => {
    const path = freshFile();
    const store = open(path);
    const db = inspect(path);
    await group(store, "c-1");
    await group(store, "c-2");
    await group(store, "c-3");
    await say(store, "c-1", "mango");
    await say(store, "c-2", "nectarine");
    await found(store, "mango"); // indexes c-2's top row
    await store.conversations.delete("c-2"); // the top rowid is free again; the watermark comes down
    const reused = await say(store, "c-1", "olive");
    await say(store, "c-3", "papaya"); // above the watermark, deleted before it is indexed
    await store.conversations.delete("c-3");
    const after = await say(store, "c-1", "quince");

    expect(await found(store, "olive")).toEqual([reused.id]);
    expect(await found(store, "quince")).toEqual([after.id]);
    expect(await found(store, "nectarine", "c-2")).toEqual([]);
    expect(await found(store, "papaya", "c-3")).toEqual([]);
    checkIntegrity(db);
  });

  it("indexes in the background, with no search, in chunks when the backlog is large", async () => {
    const path = freshFile();
    const store = open(path);
    const db = inspect(path);
    await group(store, "c-1");
    const count = SEARCH_INDEX_DEFAULTS.chunk * 2 + 10;
    await Promise.all(Array.from({ length: count }, (_, i) => say(store, "c-1", `raspberry ${i}`)));
    await waitFor(() => {
      const w = watermark(db);
      return w && w.indexed === w.top ? true : undefined;
    });
    expect(indexedRowids(db, "raspberry")).toHaveLength(count);
    checkIntegrity(db);
  });

  it("indexes at the next open what the last run left behind", async () => {
    const path = freshFile();
    const first = open(path);
    await group(first, "c-1");
    const m = await say(first, "c-1", "strawberry");
    await first.close(); // before the indexer ran
    const db = inspect(path);
    expect(watermark(db)?.indexed).toBe(0);

    const second = open(path);
    await waitFor(() => (watermark(db)?.indexed === watermark(db)?.top ? true : undefined));
    expect(await found(second, "strawberry")).toEqual([m.id]);
    checkIntegrity(db);
  });

  it("migrates a database whose messages the old insert trigger indexed", async () => {
    const path = freshFile();
    const old = databaseAt(path, 2);
    oldConversation(old, "c-1", 2);
    oldMessages(old, [
      { id: "m-old-1", conversation_id: "c-1", seq: 1, content: "ancient tangerine" },
      { id: "m-old-2", conversation_id: "c-1", seq: 2, content: "ancient ugli" },
    ]);
    old.close();

    const store = open(path);
    const db = inspect(path);
    expect(db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version).toBe(
      MIGRATIONS.length,
    );
    // Migration 7 builds the index again (with each message's conversation number), from the start.
    expect(watermark(db)).toEqual({ indexed: 0, top: 2 });
    expect(await found(store, "tangerine")).toEqual(["m-old-1"]);
    expect(watermark(db)).toEqual({ indexed: 2, top: 2 });
    await store.messages.change("m-old-1", { content: "renamed vanilla", updated_at: T0 + 1 });
    await store.messages.change("m-old-2", { content: "", deleted: true, updated_at: T0 + 1 });
    const fresh = await say(store, "c-1", "ancient watermelon");
    expect(await found(store, "ancient")).toEqual([fresh.id]);
    expect(await found(store, "vanilla")).toEqual(["m-old-1"]);
    checkIntegrity(db);
  });

  it("migrates a database whose freed top rowids sit below the watermark (migration 5)", async () => {
    const path = freshFile();
    const old = databaseAt(path, 4);
    oldConversation(old, "c-1", 1);
    oldMessages(old, [{ id: "m-old-1", conversation_id: "c-1", seq: 1, content: "ancient fig" }]);
    // An old Parley indexed rows up to 7, then a deleted conversation took rowids 2 to 7 with it: the old
    // insert trigger indexed reused rowids, and without it the watermark must come down to the top row.
    old.exec("UPDATE search_state SET indexed_rowid = 7");
    old.exec("INSERT INTO messages_fts(rowid, content) VALUES (1, 'ancient fig')");
    old.close();

    const store = open(path);
    const db = inspect(path);
    // At or below the top row (migration 5 brings it down to 1; migration 7 starts the index again at 0).
    expect(watermark(db)).toEqual({ indexed: 0, top: 1 });
    const reused = await say(store, "c-1", "ancient guava");
    expect(await found(store, "ancient")).toEqual(expect.arrayContaining(["m-old-1", reused.id]));
    expect(await found(store, "guava")).toEqual([reused.id]);
    checkIntegrity(db);
  });

  it("migrates a database with Chinese, Japanese and Thai messages: indexed again in the background, their words found (migration 16)", async () => {
    const path = freshFile();
    const old = databaseAt(path, 15);
    oldConversation(old, "c-1", 4, 1);
    oldMessages(old, [
      { id: "m-zh", conversation_id: "c-1", seq: 1, content: "你好世界", conv: 1 },
      { id: "m-ja", conversation_id: "c-1", seq: 2, content: "明日は東京に行きます", conv: 1 },
      { id: "m-th", conversation_id: "c-1", seq: 3, content: "สวัสดีครับ", conv: 1 },
      { id: "m-en", conversation_id: "c-1", seq: 4, content: "plain old words", conv: 1 },
    ]);
    // As the version before left it: every row indexed, a sentence of those scripts one token.
    old.exec("INSERT INTO messages_fts(rowid, content, conv) SELECT rowid, content, conv FROM messages");
    old.exec("UPDATE search_state SET indexed_rowid = 4");
    expect(indexedRowids(old, '"東京"')).toEqual([]);
    expect(indexedRowids(old, '"明日は東京に行きます"')).toEqual([2]);
    old.close();

    const store = open(path);
    const db = inspect(path);
    expect(db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version).toBe(
      MIGRATIONS.length,
    );
    // The copies search reads, for the messages that need one.
    expect(
      db.query<{ id: string; search_text: string | null }, []>("SELECT id, search_text FROM messages").all(),
    ).toEqual([
      { id: "m-zh", search_text: " 你 好 世 界 " },
      { id: "m-ja", search_text: " 明 日 は 東 京 に 行 き ま す " },
      { id: "m-th", search_text: " ส วั ส ดี ค รั บ " },
      { id: "m-en", search_text: null },
    ]);
    // Built again from the start, in the background, with no search asking.
    expect(watermark(db)).toEqual({ indexed: 0, top: 4 });
    await waitFor(() => (watermark(db)?.indexed === 4 ? true : undefined));
    expect(indexedRowids(db, '"東 京"')).toEqual([2]);
    checkIntegrity(db);

    expect(await found(store, "東京")).toEqual(["m-ja"]);
    expect(await found(store, "世界")).toEqual(["m-zh"]);
    expect(await found(store, "สวัสดี")).toEqual(["m-th"]);
    expect(await found(store, "words")).toEqual(["m-en"]);
    // The records are the text as sent.
    expect((await store.messages.byId("m-ja"))?.content).toBe("明日は東京に行きます");
    // An indexed old message edited, one appended: indexed as they are now.
    await store.messages.change("m-ja", { content: "明日は大阪に行きます", updated_at: T0 + 1 });
    await store.messages.change("m-en", { content: "新しい言葉", updated_at: T0 + 1 });
    const fresh = await say(store, "c-1", "東京タワー");
    expect(await found(store, "東京")).toEqual([fresh.id]);
    expect(await found(store, "大阪")).toEqual(["m-ja"]);
    expect(await found(store, "言葉")).toEqual(["m-en"]);
    expect(await found(store, "words")).toEqual([]);
    checkIntegrity(db);
    // Deleting the conversation takes its indexed rows out of the index as they were indexed.
    await store.conversations.delete("c-1");
    checkIntegrity(db);
  });

  it("migrates a database with Arabic, Hebrew and Hindi messages: copies made, indexed again in the background, words found whole (migration 18)", async () => {
    const path = freshFile();
    const old = databaseAt(path, 17);
    oldConversation(old, "c-1", 5, 1);
    oldMessages(old, [
      { id: "m-ar", conversation_id: "c-1", seq: 1, content: "كَتَبَ الدَّرْسَ", conv: 1 },
      { id: "m-he", conversation_id: "c-1", seq: 2, content: "שָׁלוֹם", conv: 1 },
      { id: "m-hi", conversation_id: "c-1", seq: 3, content: "हिंदी पसंद", conv: 1 },
      { id: "m-ja", conversation_id: "c-1", seq: 4, content: "東京 كَتَبَ", conv: 1 },
      { id: "m-en", conversation_id: "c-1", seq: 5, content: "plain old words", conv: 1 },
    ]);
    // As the version before left it: the copy of migration 16 for the Japanese one, made by its rule (the
    // Arabic word cut at its marks), and every row indexed with the marks splitting words.
    old.exec("UPDATE messages SET search_text = ' 東 京 ك ت ب ' WHERE id = 'm-ja'");
    old.exec("INSERT INTO messages_fts(rowid, content, conv) SELECT rid, content, conv FROM messages_search");
    old.exec("UPDATE search_state SET indexed_rowid = 5");
    expect(indexedRowids(old, '"ह द"')).toEqual([3]);
    expect(indexedRowids(old, '"كتب"')).toEqual([]);
    old.close();

    const store = open(path);
    const db = inspect(path);
    expect(db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version).toBe(
      MIGRATIONS.length,
    );
    expect(
      db.query<{ id: string; search_text: string | null }, []>("SELECT id, search_text FROM messages").all(),
    ).toEqual([
      { id: "m-ar", search_text: " كتب الدرس " },
      { id: "m-he", search_text: " שלום " },
      // Its marks are kept by the tokenizer itself: no copy.
      { id: "m-hi", search_text: null },
      { id: "m-ja", search_text: " 東 京 كتب " },
      { id: "m-en", search_text: null },
    ]);
    expect(watermark(db)).toEqual({ indexed: 0, top: 5 });
    await waitFor(() => (watermark(db)?.indexed === 5 ? true : undefined));
    expect(indexedRowids(db, '"हिंदी"')).toEqual([3]);
    expect(indexedRowids(db, '"ह द"')).toEqual([]);
    checkIntegrity(db);

    expect(await found(store, "كتب")).toEqual(["m-ar", "m-ja"]);
    expect(await found(store, "الدرس")).toEqual(["m-ar"]);
    expect(await found(store, "שלום")).toEqual(["m-he"]);
    expect(await found(store, "हिंदी")).toEqual(["m-hi"]);
    expect(await found(store, "ह")).toEqual([]);
    expect(await found(store, "東京")).toEqual(["m-ja"]);
    expect(await found(store, "words")).toEqual(["m-en"]);
    expect((await store.messages.byId("m-ar"))?.content).toBe("كَتَبَ الدَّرْسَ");
    // Indexed old messages edited, one appended: indexed as they are now.
    await store.messages.change("m-ar", { content: "plain again", updated_at: T0 + 1 });
    await store.messages.change("m-en", { content: "नमस्ते", updated_at: T0 + 1 });
    const fresh = await say(store, "c-1", "كِتَاب");
    expect(await found(store, "كتب")).toEqual(["m-ja"]);
    expect(await found(store, "كتاب")).toEqual([fresh.id]);
    expect(await found(store, "नमस्ते")).toEqual(["m-en"]);
    checkIntegrity(db);
    await store.conversations.delete("c-1");
    checkIntegrity(db);
  });

  it("matches the words of the content only, never the conversation's number it indexes beside them", async () => {
    const store = open(freshFile());
    await group(store, "c-1");
    await group(store, "c-2");
    const mine = await say(store, "c-1", "plain words");
    const other = await say(store, "c-2", "plain words too");
    // c-1 is conversation number 1: "1" is a token of every row of it, in the conv column.
    expect(await found(store, "1")).toEqual([]);
    expect(await found(store, "plain")).toEqual([mine.id]);
    const numbered = await say(store, "c-1", "chapter 1 begins");
    expect(await found(store, "1")).toEqual([numbered.id]);
    expect((await store.messages.search("c-2", "plain", 10)).map((m) => m.id)).toEqual([other.id]);
    await store.close();
  });

  it("closes with a run still armed, and nothing fires afterwards", async () => {
    const path = freshFile();
    const store = open(path);
    await group(store, "c-1");
    await say(store, "c-1", "xigua");
    await store.close(); // the idle run is armed now
    await Bun.sleep(SEARCH_INDEX_DEFAULTS.delayMs + 50); // past the moment it would have fired
    expect(watermark(inspect(path))?.indexed).toBe(0);
  });
});

describe("sqlite search indexer", () => {
  /** A migrated database with `rows` messages above the watermark. */
  function backlog(rows: number) {
    const db = new Database(":memory:", { strict: true });
    opened.push(db);
    for (const m of MIGRATIONS) applyMigration(db, m);
    const insert = db.query(
      `INSERT INTO messages (id, conversation_id, sender_id, seq, version_seq, content, message_type,
         attachments, reactions, deleted, created_at, updated_at)
       VALUES (?1, 'c-1', 'u-alice', ?2, ?2, 'yuzu', 'text', '[]', '[]', 0, 0, 0)`,
    );
    for (let i = 1; i <= rows; i++) insert.run(`m-${i}`, i);
    return db;
  }

  it("catches up a large backlog a chunk at a time, letting the event loop run in between", async () => {
    const db = backlog(10);
    const index = sqliteSearchIndex(db, { chunk: 3, delayMs: 60_000 });
    opened.push(index);
    const turns: number[] = [];
    let watching = true;
    const watch = () => {
      turns.push(watermark(db)?.indexed ?? -1);
      if (watching) setImmediate(watch);
    };
    setImmediate(watch);
    await index.catchUp();
    watching = false;
    await new Promise((resolve) => setImmediate(resolve)); // the last watch, before the database closes
    expect(watermark(db)?.indexed).toBe(10);
    expect(indexedRowids(db, "yuzu")).toHaveLength(10);
    // Other work ran while it was part way, not only before or after.
    expect(turns.some((w) => w > 0 && w < 10)).toBe(true);
  });

  it("stops catching up when rows it was after are deleted meanwhile", async () => {
    const db = backlog(10);
    const index = sqliteSearchIndex(db, { chunk: 3, delayMs: 60_000 });
    opened.push(index);
    const caughtUp = index.catchUp();
    // During the first yield, the top rows go (a conversation deleted): the target is never reached.
    db.exec("DELETE FROM messages WHERE rowid > 5");
    await caughtUp;
    expect(watermark(db)?.indexed).toBe(5);
  });

  it("commits its runs without an fsync, and puts the connection's own synchronous setting back for every other write", async () => {
    const synchronous = (db: Database) =>
      db.query<{ synchronous: number }, []>("PRAGMA synchronous").get()?.synchronous;
    // EXTRA (3), not the store's FULL (2): what is put back is the connection's own, whatever it is.
    const db = backlog(4);
    db.exec("PRAGMA synchronous = EXTRA");
    db.exec("CREATE TABLE seen (synchronous INTEGER)");
    db.exec(
      `CREATE TRIGGER during AFTER UPDATE ON search_state BEGIN
         INSERT INTO seen SELECT synchronous FROM pragma_synchronous; END`,
    );
    const errors: unknown[] = [];
    const index = sqliteSearchIndex(db, {
      chunk: 2,
      delayMs: 5,
      maxBackoffMs: 10,
      onError: (e) => errors.push(e),
    });
    opened.push(index);
    await index.catchUp();
    expect(watermark(db)?.indexed).toBe(4);
    // Inside each run's transaction: NORMAL (1). After it: EXTRA again.
    expect(db.query("SELECT synchronous FROM seen").all()).toEqual([{ synchronous: 1 }, { synchronous: 1 }]);
    expect(synchronous(db)).toBe(3);
    // A run that fails puts it back too.
    db.exec(
      `CREATE TRIGGER broken BEFORE UPDATE ON search_state BEGIN SELECT RAISE(ABORT, 'disk full'); END`,
    );
    db.exec(
      `INSERT INTO messages (id, conversation_id, sender_id, seq, version_seq, content, message_type,
         attachments, reactions, deleted, created_at, updated_at)
       VALUES ('m-5', 'c-1', 'u-alice', 5, 5, 'yuzu', 'text', '[]', '[]', 0, 0, 0)`,
    );
    index.poke();
    await waitFor(() => (errors.length > 0 ? true : undefined));
    expect(synchronous(db)).toBe(3);
  });

  it("runs nothing once closed", async () => {
    const db = backlog(5);
    const errors: unknown[] = [];
    const index = sqliteSearchIndex(db, { delayMs: 5, onError: (err) => errors.push(err) });
    index.close();
    db.close();
    await Bun.sleep(30);
    expect(errors).toEqual([]);
  });

  it("in the background, leaves a file another process is committing to and comes back, never waiting on it", async () => {
    const file = freshFile();
    const db = new Database(file, { strict: true });
    opened.push(db);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA busy_timeout = 5000");
    for (const m of MIGRATIONS) applyMigration(db, m);
    db.exec(
      `INSERT INTO messages (id, conversation_id, sender_id, seq, version_seq, content, message_type,
         attachments, reactions, deleted, created_at, updated_at)
       VALUES ('m-1', 'c-1', 'u-alice', 1, 1, 'yuzu', 'text', '[]', '[]', 0, 0, 0)`,
    );
    const other = new Database(file, { strict: true });
    opened.push(other);
    other.exec("BEGIN IMMEDIATE"); // another node in the middle of its commit
    const errors: unknown[] = [];
    const index = sqliteSearchIndex(db, { delayMs: 5, maxBackoffMs: 20, onError: (err) => errors.push(err) });
    opened.push(index);
    const start = performance.now();
    await Bun.sleep(40);
    // Timers ran on time: no run sat in SQLite's busy handler (5 s here).
    expect(performance.now() - start).toBeLessThan(1000);
    expect(errors.length).toBeGreaterThan(0);
    expect((errors[0] as { code?: string }).code).toStartWith("SQLITE_BUSY");
    expect(db.query<{ synchronous: number }, []>("PRAGMA synchronous").get()?.synchronous).toBe(2);
    other.exec("COMMIT");
    await waitFor(() => (watermark(db)?.indexed === 1 ? true : undefined));
  });

  it("backs off while runs keep failing, then recovers", async () => {
    const db = backlog(10);
    db.exec(
      `CREATE TRIGGER broken BEFORE UPDATE ON search_state BEGIN SELECT RAISE(ABORT, 'disk full'); END`,
    );
    let failures = 0;
    const index = sqliteSearchIndex(db, {
      chunk: 2,
      delayMs: 5,
      maxBackoffMs: 40,
      onError: () => failures++,
    });
    opened.push(index);
    // Appends keep arriving: they must not turn the backoff into a hot loop.
    const started = performance.now();
    const appends = setInterval(() => index.poke(), 1);
    try {
      await waitFor(() => (failures >= 4 ? true : undefined), 5000);
    } finally {
      clearInterval(appends);
    }
    // Waits of 10, 20 and 40 ms come between the first four failures: 5 ms apart, or a run per poke, they
    // would all have come within a few ms. (A loaded machine only makes them later.)
    expect(performance.now() - started).toBeGreaterThanOrEqual(70);

    db.exec("DROP TRIGGER broken");
    await waitFor(() => (watermark(db)?.indexed === 10 ? true : undefined));
    expect(indexedRowids(db, "yuzu")).toHaveLength(10);
  });
});
