// The SQLite adapter: the shared contract in memory and on a real file, plus what only a file can show.

import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clientKey } from "../../src/store/sqlite/client-key.ts";
import {
  FLOOR_QUERY,
  MANAGERS_QUERY,
  MEMBERSHIPS_QUERY,
  PAGE_AFTER_QUERY,
  PEERS_AMONG,
  PEERS_OF,
  RECEIPT_RANGES,
  sqliteConversations,
} from "../../src/store/sqlite/conversations.ts";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { clientKeyQuery, eventsQuery, sqliteMessages } from "../../src/store/sqlite/messages.ts";
import { applyMigration, MIGRATIONS } from "../../src/store/sqlite/schema.ts";
import { sqliteSearchIndex } from "../../src/store/sqlite/search-index.ts";
import { storeContract } from "./contract.ts";
import { conversation, conversationsContract, draft, member } from "./conversations-contract.ts";
import { databaseAt, oldConversation, oldMessages, schemaNames, T0 } from "./sqlite-old.ts";

const dir = mkdtempSync(join(tmpdir(), "parley-store-"));
let files = 0;
const freshFile = () => join(dir, `store-${++files}.db`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract("sqlite store (memory)", async () => openSqliteStore(":memory:"));
storeContract("sqlite store (file)", async () => openSqliteStore(freshFile()));
conversationsContract("sqlite conversations (memory)", async () => openSqliteStore(":memory:"));
conversationsContract("sqlite conversations (file)", async () => openSqliteStore(freshFile()));

describe("sqlite store on a file", () => {
  it("keeps its data when the file is opened again", async () => {
    const path = freshFile();
    const first = openSqliteStore(path);
    await first.sessions.create({
      id: "s-1",
      user_id: "u-1",
      device_name: "laptop",
      user_agent: "bun-test",
      ip: "127.0.0.1",
      created_at: 1,
      last_seen_at: 1,
      expires_at: 2,
      revoked_at: null,
      signed_in_by: "password",
    });
    await first.close();
    const second = openSqliteStore(path);
    try {
      expect((await second.sessions.byId("s-1"))?.device_name).toBe("laptop");
    } finally {
      await second.close();
    }
  });
});

describe("sqlite reads of the log kept in memory (reads-memo.ts)", () => {
  it("sees what another connection to the file wrote since the answer was kept", async () => {
    const path = freshFile();
    const mine = openSqliteStore(path);
    const other = openSqliteStore(path);
    try {
      await mine.conversations.create(conversation("c-1"), [member("c-1", "u-alice", { role: "owner" })]);
      await mine.messages.append(draft("c-1", "u-alice"));
      const ids = async () => (await mine.messages.events("c-1", 0, 100)).map((m) => m.seq);
      expect(await ids()).toEqual([1]);
      expect(await ids()).toEqual([1]); // kept
      const sent = await other.messages.append(draft("c-1", "u-alice"));
      expect(await ids()).toEqual([1, 2]);
      await other.messages.change(sent.message.id, { content: "edited", updated_at: T0 + 1 });
      expect(
        (await mine.messages.events("c-1", 0, 100)).map((m) => [m.seq, m.version_seq, m.content]),
      ).toEqual([
        [1, 1, expect.any(String)],
        [2, 3, "edited"],
      ]);
      expect((await mine.messages.page("c-1", { limit: 10 })).map((m) => m.content)).toEqual([
        expect.any(String),
        "edited",
      ]);
      await other.messages.change(sent.message.id, { content: "again", updated_at: T0 + 2 });
      expect((await mine.messages.page("c-1", { limit: 10 })).map((m) => m.content)).toEqual([
        expect.any(String),
        "again",
      ]);
      await other.conversations.delete("c-1");
      expect(await mine.messages.events("c-1", 0, 100)).toEqual([]);
      expect(await mine.messages.page("c-1", { limit: 10 })).toEqual([]);
    } finally {
      await other.close();
      await mine.close();
    }
  });
});

describe("sqlite migration 4 (indexes appends no longer pay for)", () => {
  it("moves an old database's changed messages to the partial index and reads catch-up as before", async () => {
    const path = freshFile();
    const old = databaseAt(path, 3);
    oldConversation(old, "c-1", 4);
    // m-1 was edited (version 4) before the upgrade; m-2 and m-3 never changed.
    oldMessages(old, [
      { id: "m-1", conversation_id: "c-1", seq: 1, version_seq: 4, content: "edited", edited_at: T0 },
      { id: "m-2", conversation_id: "c-1", seq: 2, content: "two" },
      { id: "m-3", conversation_id: "c-1", seq: 3, content: "three" },
    ]);
    old.close();

    const store = openSqliteStore(path);
    try {
      const db = new Database(path, { readonly: true });
      const indexes = schemaNames(db, "index");
      expect(indexes).toContain("messages_changed");
      expect(indexes).not.toContain("messages_version");
      expect(indexes).not.toContain("conversations_activity");
      const changedRows = db
        .query<{ n: number }, []>(
          "SELECT COUNT(*) AS n FROM messages INDEXED BY messages_changed WHERE conv = 1 AND version_seq != seq",
        )
        .get();
      expect(changedRows?.n).toBe(1);
      db.close();

      const events = async (after: number) =>
        (await store.messages.events("c-1", after, 10)).map((m) => [m.id, m.version_seq]);
      expect(await events(0)).toEqual([
        ["m-2", 2],
        ["m-3", 3],
        ["m-1", 4],
      ]);
      expect(await events(3)).toEqual([["m-1", 4]]);
    } finally {
      await store.close();
    }
  });
});

describe("sqlite migration 5 (conversations keyed by number in the messages indexes)", () => {
  it("numbers an old database's conversations and messages, and pages, catches up and appends as before", async () => {
    const path = freshFile();
    const old = databaseAt(path, 4);
    oldConversation(old, "c-a", 2);
    oldConversation(old, "c-b", 1);
    oldMessages(old, [
      { id: "m-a1", conversation_id: "c-a", seq: 1, client_msg_id: "k-1", content: "one" },
      { id: "m-a2", conversation_id: "c-a", seq: 2, content: "two" },
      { id: "m-b1", conversation_id: "c-b", seq: 1, client_msg_id: "k-1", content: "other" },
      // Left behind by conversations that are gone: they must not stop the upgrade.
      { id: "m-x1", conversation_id: "c-gone", seq: 1 },
      { id: "m-x2", conversation_id: "c-gone-too", seq: 1 },
    ]);
    old.close();

    const store = openSqliteStore(path);
    try {
      const db = new Database(path, { readonly: true });
      const nums = db
        .query<{ id: string; num: number }, []>("SELECT id, num FROM conversations ORDER BY id")
        .all();
      expect(nums.map((r) => r.num).sort()).toEqual([1, 2]);
      const convOf = db.query<{ conv: number }, [string]>("SELECT conv FROM messages WHERE id = ?");
      const numOf = (id: string) => nums.find((r) => r.id === id)?.num;
      expect(convOf.get("m-a1")?.conv).toBe(numOf("c-a") as number);
      expect(convOf.get("m-b1")?.conv).toBe(numOf("c-b") as number);
      const indexes = schemaNames(db, "index");
      expect(indexes).toContain("messages_conv_seq");
      expect(indexes).toContain("messages_conv_client");
      expect(indexes).not.toContain("messages_seq");
      expect(indexes).not.toContain("messages_client_id");
      expect(schemaNames(db, "trigger")).not.toContain("messages_fts_insert");

      // The records never show the number.
      expect(Object.keys((await store.conversations.byId("c-a")) ?? {})).not.toContain("num");
      expect((await store.messages.page("c-a", { limit: 10 })).map((m) => m.id)).toEqual(["m-a1", "m-a2"]);
      expect((await store.messages.page("c-b", { limit: 10 })).map((m) => m.id)).toEqual(["m-b1"]);
      expect((await store.messages.events("c-a", 1, 10)).map((m) => m.id)).toEqual(["m-a2"]);
      // A client id stored before the upgrade is still a duplicate after it, in its own conversation only.
      const again = await store.messages.append({ ...draft("c-a", "u-alice"), client_msg_id: "k-1" });
      expect(again).toMatchObject({ status: "duplicate", message: { id: "m-a1" } });
      const next = await store.messages.append(draft("c-b", "u-alice"));
      expect(next).toMatchObject({ status: "created", message: { seq: 2 } });

      // A conversation made after the upgrade takes the next number.
      await store.conversations.create(conversation("c-new"), []);
      expect(
        db.query<{ num: number }, []>("SELECT num FROM conversations WHERE id = 'c-new'").get()?.num,
      ).toBe(3);
      expect(await store.messages.append(draft("c-new", "u-alice"))).toMatchObject({ message: { seq: 1 } });
      db.close();
    } finally {
      await store.close();
    }
  });

  it("gives a conversation made after the top one was deleted a number of its own", async () => {
    const store = openSqliteStore(":memory:");
    try {
      await store.conversations.create(conversation("c-1"), []);
      await store.conversations.create(conversation("c-2"), []);
      await store.messages.append(draft("c-2", "u-alice", { client_msg_id: "k" }));
      await store.conversations.delete("c-2");
      await store.conversations.create(conversation("c-3"), []);
      // c-3 may reuse c-2's number, but none of c-2's messages is left to show up in it.
      expect(await store.messages.page("c-3", { limit: 10 })).toEqual([]);
      expect(await store.messages.append(draft("c-3", "u-alice", { client_msg_id: "k" }))).toMatchObject({
        status: "created",
        message: { seq: 1 },
      });
    } finally {
      await store.close();
    }
  });

  it("finds a conversation's messages through the conversation's number, never a scan", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = (sql: string, ...args: (string | number)[]) =>
      db
        .query<{ detail: string }, (string | number)[]>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...args)
        .map((r) => r.detail);
    const events = plan(eventsQuery("id, version_seq"), "c-1", 0, 10);
    expect(events).toContain("SEARCH messages USING INDEX messages_conv_seq (conv=? AND seq>?)");
    expect(events).toContain("SEARCH messages USING INDEX messages_changed (conv=? AND version_seq>?)");
    expect(events).toContain("SEARCH conversations USING INDEX sqlite_autoindex_conversations_1 (id=?)");
    for (const detail of events) expect(detail).not.toMatch(/^SCAN (messages|conversations)/);
    db.close();
  });
});

describe("sqlite peersOf (migration 14)", () => {
  it("finds a channel reader's peers by the channel's owners and admins (participants_role), not its readers", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = db
      .query<{ detail: string }, [string]>(`EXPLAIN QUERY PLAN ${PEERS_OF}`)
      .all("u-alice")
      .map((r) => r.detail);
    expect(plan).toContain("SEARCH me USING INDEX participants_user (user_id=?)");
    expect(plan).toContain(
      "SEARCH them USING COVERING INDEX participants_role (conversation_id=? AND role=?)",
    );
    for (const detail of plan) expect(detail).not.toMatch(/^SCAN (participants|conversations|them|me|c)\b/);
    db.close();
  });

  it("answers a reader of a channel of 5,000 its owner and admin, the owner all 5,000, a user in nothing themself", async () => {
    const path = freshFile();
    const store = openSqliteStore(path);
    try {
      const { conversations } = store;
      const members = Array.from({ length: 5000 }, (_, i) => `u-${String(i).padStart(4, "0")}`);
      await conversations.create(
        {
          id: "c-big",
          conversation_type: "channel",
          name: "big",
          topic: null,
          encrypted: false,
          dm_key: null,
          created_by: "u-0000",
          created_at: T0,
          updated_at: T0,
          last_activity: T0,
          last_seq: 0,
          last_message_id: null,
          message_count: 0,
        },
        members.map((user_id, i) => ({
          conversation_id: "c-big",
          user_id,
          role: i === 0 ? "owner" : i === 1 ? "admin" : "member",
          joined_at: T0,
          joined_seq: 0,
          last_read_seq: 0,
          delivered_seq: 0,
          delivered_at: null,
          read_at: null,
        })),
      );
      expect((await conversations.peersOf("u-4999")).sort()).toEqual(["u-0000", "u-0001", "u-4999"]);
      expect((await conversations.peersOf("u-0000")).length).toBe(5000);
      expect(await conversations.peersOf("u-nobody")).toEqual(["u-nobody"]);
    } finally {
      await store.close();
    }
  });
});

describe("sqlite peersAmong", () => {
  it("tells which ids are a user's peers through each id's conversations, never a scan of a channel's members", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = db
      .query<{ detail: string }, [string, string]>(`EXPLAIN QUERY PLAN ${PEERS_AMONG}`)
      .all("u-alice", '["u-bob"]')
      .map((r) => r.detail);
    expect(plan).toContain("SEARCH them USING INDEX participants_user (user_id=?)");
    expect(plan).toContain("SEARCH me USING PRIMARY KEY (conversation_id=? AND user_id=?)");
    expect(plan).toContain("SEARCH c USING INDEX sqlite_autoindex_conversations_1 (id=?)");
    for (const detail of plan) expect(detail).not.toMatch(/^SCAN (participants|conversations|them|me|c)\b/);
    db.close();
  });
});

describe("sqlite migration 6 (idempotent appends found by a client key)", () => {
  it("files an old database's client ids under their keys, so a retry from before the upgrade is found", async () => {
    const path = freshFile();
    const old = databaseAt(path, 5);
    const rows = 25_000; // more than one of the migration's 10,000-row reads
    oldConversation(old, "c-1", rows + 1, 1);
    oldMessages(old, [
      ...Array.from({ length: rows }, (_, i) => ({
        id: `m-${i + 1}`,
        conversation_id: "c-1",
        seq: i + 1,
        sender_id: (i + 1) % 2 ? "u-alice" : "u-bob",
        client_msg_id: `cm-${i + 1}`,
        conv: 1,
      })),
      { id: "m-none", conversation_id: "c-1", seq: rows + 1, conv: 1 },
    ]);
    old.close();

    const store = openSqliteStore(path);
    try {
      const db = new Database(path, { readonly: true });
      const keyOf = db.query<
        { sender_id: string; client_msg_id: string | null; client_key: number | null },
        [string]
      >("SELECT sender_id, client_msg_id, client_key FROM messages WHERE id = ?");
      for (const id of ["m-1", "m-2", "m-10001", `m-${rows}`]) {
        const row = keyOf.get(id);
        expect(row?.client_key).toBe(clientKey(row?.sender_id as string, row?.client_msg_id as string));
      }
      expect(keyOf.get("m-none")?.client_key).toBeNull();
      db.close();

      const retry = await store.messages.append({ ...draft("c-1", "u-bob"), client_msg_id: `cm-${rows}` });
      expect(retry).toMatchObject({ status: "duplicate", message: { id: `m-${rows}` } });
      // The same client id from the other sender was never stored: a new message.
      const other = await store.messages.append({ ...draft("c-1", "u-alice"), client_msg_id: `cm-${rows}` });
      expect(other).toMatchObject({ status: "created", message: { seq: rows + 2 } });
    } finally {
      await store.close();
    }
  });

  it("stores a message whose client key another pair already has, and finds each pair's own on a retry", async () => {
    const path = freshFile();
    const store = openSqliteStore(path);
    try {
      await store.conversations.create(conversation("c-1"), []);
      const first = await store.messages.append(draft("c-1", "u-alice", { client_msg_id: "cm-a" }));
      // No two pairs with one 53-bit key are known, so make one: file the stored row under the key
      // of another pair, as a collision would.
      const db = new Database(path);
      db.query("UPDATE messages SET client_key = ? WHERE id = ?").run(
        clientKey("u-bob", "cm-b"),
        first.message.id,
      );
      db.close();
      const second = await store.messages.append(draft("c-1", "u-bob", { client_msg_id: "cm-b" }));
      expect(second).toMatchObject({ status: "created", message: { seq: 2 } });
      const retry = await store.messages.append(draft("c-1", "u-bob", { client_msg_id: "cm-b" }));
      expect(retry).toMatchObject({ status: "duplicate", message: { id: second.message.id } });
    } finally {
      await store.close();
    }
  });

  it("looks a client id up through the index, never a scan", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = db
      .query<{ detail: string }, [string, number, string, string]>(
        `EXPLAIN QUERY PLAN ${clientKeyQuery("id")}`,
      )
      .all("c-1", 1, "u-alice", "cm-1")
      .map((r) => r.detail);
    expect(plan).toContain("SEARCH messages USING INDEX messages_conv_client (conv=? AND client_key=?)");
    db.close();
  });
});

describe("sqlite migration 8 (where each member's part of the log starts)", () => {
  it("starts an old database's members at the conversation's start, and keeps a new member's joined_seq", async () => {
    const path = freshFile();
    const old = databaseAt(path, 7);
    oldConversation(old, "c-1", 3, 1);
    old
      .query(
        `INSERT INTO participants (conversation_id, user_id, role, joined_at, last_read_seq, delivered_seq,
           delivered_at, read_at) VALUES ('c-1', 'u-bob', 'member', ${T0}, 2, 2, NULL, NULL)`,
      )
      .run();
    old.close();

    const store = openSqliteStore(path);
    try {
      expect(await store.conversations.participant("c-1", "u-bob")).toMatchObject({
        joined_seq: 0,
        last_read_seq: 2,
      });
      await store.conversations.addParticipant(member("c-1", "u-carol", { joined_seq: 3 }));
      expect((await store.conversations.participants("c-1")).map((p) => [p.user_id, p.joined_seq])).toEqual([
        ["u-bob", 0],
        ["u-carol", 3],
      ]);
    } finally {
      await store.close();
    }
  });
});

describe("sqlite migration 9 (the status a user chose)", () => {
  it("keeps away and busy users' status as their choice, and everyone else's choice online", async () => {
    const path = freshFile();
    const old = databaseAt(path, 8);
    const before: [string, string][] = [
      ["ann", "away"],
      ["bea", "dnd"],
      ["cal", "online"],
      ["dan", "offline"],
    ];
    for (const [name, status] of before)
      old
        .query(
          `INSERT INTO users (id, email, username, display_name, display_name_lower, password_hash, status,
             role, last_seen, created_at, updated_at)
           VALUES (?1, ?1 || '@example.com', ?1, ?1, ?1, 'x', ?2, 'user', NULL, ${T0}, ${T0})`,
        )
        .run(`u-${name}`, status);
    old.close();

    const store = openSqliteStore(path);
    try {
      const chosen = [];
      for (const name of ["ann", "bea", "cal", "dan"]) {
        const user = await store.users.byId(`u-${name}`);
        chosen.push([user?.status, user?.chosen_status]);
      }
      expect(chosen).toEqual([
        ["away", "away"],
        ["dnd", "dnd"],
        ["online", "online"],
        ["offline", "online"],
      ]);
    } finally {
      await store.close();
    }
  });
});

describe("sqlite migration 10 (display names searched in NFC)", () => {
  it("makes the search key of a display name stored with decomposed accents again, so that a composed query finds it", async () => {
    const path = freshFile();
    const old = databaseAt(path, 9);
    const insert = old.query(
      `INSERT INTO users (id, email, username, display_name, display_name_lower, password_hash, status,
         role, last_seen, created_at, updated_at)
       VALUES (?1, ?1 || '@example.com', ?1, ?2, ?3, 'x', 'offline', 'user', NULL, ${T0}, ${T0})`,
    );
    // As the version before wrote them: the key was the name lowercased, nothing more.
    for (const [name, display] of [
      ["zoe", "Zoe\u0308 D"],
      ["ann", "Ann"],
    ] as const)
      insert.run(name, display, display.toLowerCase());
    old.close();

    const store = openSqliteStore(path);
    try {
      expect((await store.users.list({ prefix: "zo\u00eb", limit: 10 })).map((u) => u.username)).toEqual([
        "zoe",
      ]);
      expect((await store.users.list({ prefix: "ann", limit: 10 })).map((u) => u.username)).toEqual(["ann"]);
      expect((await store.users.byId("zoe"))?.display_name).toBe("Zoe\u0308 D");
    } finally {
      await store.close();
    }
  });
});

describe("sqlite migration 11 (accounts without a password, and whether the email was proved)", () => {
  it("keeps every user, each with their password and not verified (sign-up never proved an address), and then takes a null password", async () => {
    const path = freshFile();
    const old = databaseAt(path, 10);
    const insert = old.query(
      `INSERT INTO users (id, email, username, display_name, display_name_lower, password_hash, status,
         chosen_status, role, last_seen, created_at, updated_at)
       VALUES (?1, ?1 || '@example.com', ?1, ?2, lower(?2), 'hash-' || ?1, ?3, ?4, ?5, NULL, ${T0}, ${T0})`,
    );
    insert.run("ann", "Ann", "away", "away", "admin");
    insert.run("bob", "Bob", "offline", "dnd", "user");
    old.close();

    const store = openSqliteStore(path);
    try {
      expect(await store.users.byId("ann")).toEqual({
        id: "ann",
        email: "ann@example.com",
        username: "ann",
        display_name: "Ann",
        password_hash: "hash-ann",
        email_verified_at: null,
        status: "away",
        chosen_status: "away",
        role: "admin",
        last_seen: null,
        created_at: T0,
        updated_at: T0,
      });
      expect(await store.users.byEmail("bob@example.com")).toMatchObject({
        password_hash: "hash-bob",
        email_verified_at: null,
        chosen_status: "dnd",
      });
      // The indexes came back with the table: search by display name, unique email and username.
      expect((await store.users.list({ prefix: "bo", limit: 10 })).map((u) => u.id)).toEqual(["bob"]);
      await expect(
        store.users.create({
          id: "other",
          email: "ann@example.com",
          username: "other",
          display_name: "Other",
          password_hash: null,
          email_verified_at: null,
          status: "offline",
          chosen_status: "online",
          role: "user",
          last_seen: null,
          created_at: T0,
          updated_at: T0,
        }),
      ).rejects.toMatchObject({ field: "email" });
      const proved = await store.users.update(
        "bob",
        { password_hash: null, email_verified_at: T0 + 1, updated_at: T0 + 1 },
        { email_verified_at: null },
      );
      expect(proved).toMatchObject({ password_hash: null, email_verified_at: T0 + 1 });
    } finally {
      await store.close();
    }
    const db = new Database(path, { strict: true });
    try {
      expect(schemaNames(db, "index")).toContain("users_display_name");
      expect(
        db.query<{ n: string }, []>("SELECT name AS n FROM sqlite_master WHERE name = 'users_next'").all(),
      ).toEqual([]);
    } finally {
      db.close();
    }
  });
});

describe("sqlite group commit", () => {
  it("commits a flood of appends a batch at a time, in order, with the event loop free between batches", async () => {
    const db = new Database(":memory:", { strict: true });
    for (const m of MIGRATIONS) applyMigration(db, m);
    const index = sqliteSearchIndex(db, { delayMs: 60_000 });
    try {
      await sqliteConversations(db).create(conversation("c-1"), []);
      const messages = sqliteMessages(db, index, 3);
      const order: string[] = [];
      const appends = Array.from({ length: 8 }, (_, i) => {
        const p = messages.append(draft("c-1", "u-alice", { client_msg_id: `flood-${i}` }));
        void p.then(() => order.push(`a${i}`));
        return p;
      });
      let done = false;
      const tick = () => {
        order.push("turn");
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      const results = await Promise.all(appends);
      done = true;
      expect(results.map((r) => [r.status, r.message.seq])).toEqual(
        Array.from({ length: 8 }, (_, i) => ["created", i + 1]),
      );
      // Three, then three, then two, each batch after a turn of the loop.
      const at = (name: string) => order.indexOf(name);
      expect(at("a2")).toBeLessThan(at("turn"));
      expect(at("a3")).toBeGreaterThan(at("turn"));
      expect(order.slice(at("a3"), at("a3") + 3)).toEqual(["a3", "a4", "a5"]);
      expect(order.filter((o) => o === "turn").length).toBeGreaterThanOrEqual(2);
      expect(at("a6")).toBeGreaterThan(order.indexOf("turn", at("a5")));
    } finally {
      index.close();
      db.close();
    }
  });

  it("refuses a batch size that is not a positive integer", () => {
    const db = new Database(":memory:", { strict: true });
    for (const m of MIGRATIONS) applyMigration(db, m);
    const index = sqliteSearchIndex(db, { delayMs: 60_000 });
    try {
      for (const bad of [0, -1, 1.5, Number.NaN])
        expect(() => sqliteMessages(db, index, bad)).toThrow(/maxBatch/);
    } finally {
      index.close();
      db.close();
    }
  });
});

describe("sqlite migration 12 (a conversation's lowest positions by index)", () => {
  it("finds the two lowest of each position in its index, with no sort and no scan of the members", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = db
      .query<{ detail: string }, [string]>(`EXPLAIN QUERY PLAN ${FLOOR_QUERY}`)
      .all("c-1")
      .map((r) => r.detail);
    expect(plan).toContain(
      "SEARCH participants USING COVERING INDEX participants_delivered (conversation_id=?)",
    );
    expect(plan).toContain("SEARCH participants USING COVERING INDEX participants_read (conversation_id=?)");
    for (const detail of plan) expect(detail).not.toMatch(/TEMP B-TREE|^SCAN participants/);
    db.close();
  });
});

describe("sqlite migration 13 (where a conversation's receipts stand)", () => {
  it("starts an old database's conversations at receipts version 0, and counts their changes from then on", async () => {
    const path = freshFile();
    const old = databaseAt(path, 12);
    oldConversation(old, "c-1", 3, 1);
    old
      .query(
        `INSERT INTO participants (conversation_id, user_id, role, joined_at, last_read_seq, delivered_seq,
           delivered_at, read_at) VALUES ('c-1', 'u-bob', 'member', ${T0}, 2, 2, NULL, NULL)`,
      )
      .run();
    old.close();

    const store = openSqliteStore(path);
    try {
      const version = async () =>
        (await store.conversations.memberships("u-bob", ["c-1"]))[0]?.receipts_version;
      expect(await version()).toBe(0);
      await store.conversations.markRead("c-1", "u-bob", 3, T0);
      expect(await version()).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("looks each conversation named up by its keys, the ids outermost", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = db
      .query<{ detail: string }, [string, string]>(`EXPLAIN QUERY PLAN ${MEMBERSHIPS_QUERY}`)
      .all("u-1", "[]")
      .map((r) => r.detail);
    expect(plan[0]).toMatch(/^SCAN ids VIRTUAL TABLE/);
    expect(plan).toContain("SEARCH p USING PRIMARY KEY (conversation_id=? AND user_id=?)");
    expect(plan).toContain("SEARCH c USING INDEX sqlite_autoindex_conversations_1 (id=?)");
    db.close();
  });
});

describe("sqlite migration 15 (member counts kept with each conversation)", () => {
  it("counts an old database's members once, then moves each count with the members added and removed", async () => {
    const path = freshFile();
    const old = databaseAt(path, 14);
    oldConversation(old, "c-1", 0, 1);
    oldConversation(old, "c-2", 0, 2);
    oldConversation(old, "c-empty", 0, 3);
    const insert = old.query(
      `INSERT INTO participants (conversation_id, user_id, role, joined_at, joined_seq, last_read_seq,
         delivered_seq, delivered_at, read_at) VALUES (?, ?, 'member', ${T0}, 0, 0, 0, NULL, NULL)`,
    );
    for (let i = 0; i < 30; i++) insert.run("c-1", `u-${i}`);
    insert.run("c-2", "u-0");
    old.close();

    const store = openSqliteStore(path);
    try {
      const count = async (id: string) => (await store.conversations.byId(id))?.member_count;
      expect([await count("c-1"), await count("c-2"), await count("c-empty")]).toEqual([30, 1, 0]);
      await store.conversations.addParticipant(member("c-2", "u-new"));
      await store.conversations.removeParticipant("c-1", "u-3");
      expect([await count("c-1"), await count("c-2")]).toEqual([29, 2]);
    } finally {
      await store.close();
    }
  });

  it("finds a conversation's owners and admins, and a page of its members, by index: no scan, no sort of its members", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = (sql: string, ...args: (string | number)[]) =>
      db
        .query<{ detail: string }, (string | number)[]>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...args)
        .map((r) => r.detail);
    const managers = plan(MANAGERS_QUERY, "c-1");
    expect(managers).toContain(
      "SEARCH participants USING INDEX participants_role (conversation_id=? AND role=?)",
    );
    for (const detail of managers) expect(detail).not.toMatch(/^SCAN participants/);
    const page = plan(PAGE_AFTER_QUERY, "c-1", "u-1", 10);
    expect(page).toEqual(["SEARCH participants USING PRIMARY KEY (conversation_id=? AND user_id>?)"]);
    db.close();
  });
});

describe("sqlite migration 17 (a message's receipts counted)", () => {
  it("counts ranges of the joined and position indexes alone, and reads the sender's row by its key: no scan of the members", () => {
    const db = new Database(":memory:");
    for (const m of MIGRATIONS) applyMigration(db, m);
    const plan = db
      .query<{ detail: string }, [string, number, string]>(`EXPLAIN QUERY PLAN ${RECEIPT_RANGES}`)
      .all("c-1", 5, "u-1")
      .map((r) => r.detail);
    for (const [index, column] of [
      ["participants_joined", "joined_seq"],
      ["participants_delivered", "delivered_seq"],
      ["participants_read", "last_read_seq"],
    ])
      expect(plan).toContain(
        `SEARCH participants USING COVERING INDEX ${index} (conversation_id=? AND ${column}>?)`,
      );
    expect(plan).toContain("SEARCH s USING PRIMARY KEY (conversation_id=? AND user_id=?) LEFT-JOIN");
    for (const detail of plan) expect(detail).not.toMatch(/TEMP B-TREE|^SCAN /);
    db.close();
  });

  it("raises an old database's positions below joined_seq to it, and counts its members", async () => {
    const path = freshFile();
    const old = databaseAt(path, 16);
    oldConversation(old, "c-1", 6, 1);
    const insert = old.query(
      `INSERT INTO participants (conversation_id, user_id, role, joined_at, joined_seq, last_read_seq,
         delivered_seq, delivered_at, read_at) VALUES ('c-1', ?, 'member', ${T0}, ?, ?, ?, NULL, NULL)`,
    );
    // [user, joined_seq, last_read_seq, delivered_seq]
    insert.run("u-0", 0, 6, 6);
    insert.run("u-1", 0, 3, 4);
    insert.run("u-2", 4, 0, 0); // added with its positions at 0: raised to 4
    insert.run("u-3", 5, 5, 6);
    old.close();
    const store = openSqliteStore(path);
    try {
      const positions = (await store.conversations.participants("c-1")).map((p) => [
        p.user_id,
        p.last_read_seq,
        p.delivered_seq,
      ]);
      expect(positions).toEqual([
        ["u-0", 6, 6],
        ["u-1", 3, 4],
        ["u-2", 4, 4],
        ["u-3", 5, 6],
      ]);
      // Sent at 4 by u-0: to u-1 alone (u-2 and u-3 joined at or after it), who has it but has not read it.
      expect(await store.conversations.receiptCounts("c-1", 4, "u-0")).toEqual({
        recipients: 1,
        delivered: 1,
        read: 0,
      });
      expect(await store.conversations.receiptCounts("c-1", 6, "u-0")).toEqual({
        recipients: 3,
        delivered: 1,
        read: 0,
      });
    } finally {
      await store.close();
    }
  });
});

describe("sqlite migration 19 (what opened each session)", () => {
  it("takes every session from before as opened by password, and keeps what opens the new ones", async () => {
    const path = freshFile();
    const old = databaseAt(path, 18);
    old
      .query(
        `INSERT INTO sessions (id, user_id, device_name, user_agent, ip, created_at, last_seen_at, expires_at,
           revoked_at) VALUES ('s-old', 'u-1', 'laptop', 'ua', '127.0.0.1', ${T0}, ${T0}, ${T0 + 1000}, NULL)`,
      )
      .run();
    old.close();
    const store = openSqliteStore(path);
    try {
      expect(await store.sessions.byId("s-old")).toEqual({
        id: "s-old",
        user_id: "u-1",
        device_name: "laptop",
        user_agent: "ua",
        ip: "127.0.0.1",
        created_at: T0,
        last_seen_at: T0,
        expires_at: T0 + 1000,
        revoked_at: null,
        signed_in_by: "password",
      });
      const old = await store.sessions.byId("s-old");
      if (!old) throw new Error("s-old is gone");
      await store.sessions.create({ ...old, id: "s-new", signed_in_by: "magic_link" });
      expect((await store.sessions.byId("s-new"))?.signed_in_by).toBe("magic_link");
    } finally {
      await store.close();
    }
  });
});

describe("sqlite migration 20 (email verification tokens)", () => {
  it("adds their table next to the magic links of before, which go on working", async () => {
    const path = freshFile();
    const old = databaseAt(path, 19);
    old
      .query(
        `INSERT INTO magic_links (hash, user_id, email, created_at, expires_at, used_at)
         VALUES ('m-old', 'u-1', 'a@example.com', ${T0}, ${T0 + 600_000}, NULL)`,
      )
      .run();
    old.close();
    const store = openSqliteStore(path);
    try {
      const token = {
        hash: "v-1",
        user_id: "u-1",
        email: "a@example.com",
        created_at: T0,
        expires_at: T0 + 3600_000,
        used_at: null,
      };
      await store.emailVerifications.add(token);
      expect(await store.emailVerifications.consume("m-old", T0 + 1)).toBeNull();
      expect(await store.emailVerifications.consume("v-1", T0 + 1)).toEqual({ ...token, used_at: T0 + 1 });
      expect((await store.magicLinks.consume("m-old", T0 + 1))?.user_id).toBe("u-1");
    } finally {
      await store.close();
    }
  });
});
