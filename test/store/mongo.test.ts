// The MongoDB adapter against a real server: the shared contract and what it sets up at boot, in a database
// of its own that is dropped afterwards. Runs only when MONGODB_URL is set.

import { afterAll, describe, expect, it } from "bun:test";
import { MongoClient } from "mongodb";
import { needsSearchText } from "../../src/lib/segment.ts";
import { openMongoStore } from "../../src/store/mongo/index.ts";
import { searchFilter } from "../../src/store/mongo/messages.ts";
import {
  collections,
  type MessageDoc,
  OLD_TEXT_INDEX,
  raisePositionsToJoined,
  searchTextPattern,
  staleNameKey,
  TEXT_INDEX,
} from "../../src/store/mongo/schema.ts";
import { quotedTerms } from "../../src/store/search.ts";
import { storeContract } from "./contract.ts";
import { conversation, conversationsContract, draft, member } from "./conversations-contract.ts";

const url = process.env.MONGODB_URL;
const dbName = `parley_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;

if (!url) {
  console.warn(
    "MongoDB store contract suite SKIPPED: MONGODB_URL is not set (no MongoDB server on this machine); " +
      "set it to run the same suite against a real server.",
  );
}

/** Connected on first use, so that nothing connects when the suite is skipped. */
let admin: MongoClient | undefined;
const adminClient = async (serverUrl: string) => {
  admin ??= await new MongoClient(serverUrl).connect();
  return admin;
};

afterAll(async () => {
  if (!admin) return;
  await admin.db(dbName).dropDatabase();
  await admin.close();
});

describe.skipIf(!url)("MongoDB store", () => {
  const serverUrl = url ?? ""; // this body runs even when skipped; its tests do not
  // One database per run, emptied before each test: every test starts from a store with nothing in it.
  storeContract("mongo", async () => {
    await (await adminClient(serverUrl)).db(dbName).dropDatabase();
    return openMongoStore(serverUrl, dbName);
  });
  conversationsContract("mongo conversations", async () => {
    await (await adminClient(serverUrl)).db(dbName).dropDatabase();
    return openMongoStore(serverUrl, dbName);
  });
});

describe("MongoDB upgrade to search_text", () => {
  it("reads, with a pattern of literal ranges the server can run, exactly the messages searchText copies", () => {
    const pattern = new RegExp(searchTextPattern().pattern, "u");
    for (let cp = 0; cp < 0x40000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (pattern.test(c) !== needsSearchText(c)) throw new Error(`U+${cp.toString(16)} differs`);
    }
    expect(pattern.test("plain words, Привет, 한국어")).toBe(false);
    expect(pattern.test("a 東京 b")).toBe(true);
    expect(pattern.test("\u{20000}")).toBe(true);
    expect(pattern.test("كَتَبَ")).toBe(true);
    expect(pattern.test("كتب हिंदी")).toBe(false);
  });
});

describe.skipIf(!url)("MongoDB store at boot", () => {
  const serverUrl = url ?? "";

  it("creates its indexes, and a second boot over them succeeds", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const first = await openMongoStore(serverUrl, dbName);
    const second = await openMongoStore(serverUrl, dbName);
    await Promise.all([first.close(), second.close()]);
    const indexes = async (collection: string) =>
      (await db.collection(collection).indexes())
        .map((i) => ({ name: i.name, unique: i.unique === true, ttl: i.expireAfterSeconds ?? null }))
        .sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const plain = (name: string) => ({ name, unique: false, ttl: null });
    const unique = (name: string) => ({ name, unique: true, ttl: null });
    expect(await indexes("users")).toEqual([
      plain("_id_"),
      plain("display_name_lower_1"),
      unique("email_1"),
      unique("username_1"),
    ]);
    expect(await indexes("sessions")).toEqual([plain("_id_"), plain("user_id_1_created_at_1")]);
    expect(await indexes("refresh_tokens")).toEqual([plain("_id_"), unique("hash_1"), plain("session_id_1")]);
    // Each kind of mailed token in its own collection, with the same indexes (expired ones go a day after).
    for (const tokens of ["magic_links", "email_verifications"])
      expect(await indexes(tokens)).toEqual([
        plain("_id_"),
        { name: "expires_at_1", unique: false, ttl: 24 * 3600 },
        unique("hash_1"),
      ]);
    expect(await indexes("login_failures")).toEqual([plain("_id_"), plain("key_1_at_1")]);
    expect(await indexes("lockouts")).toEqual([plain("_id_"), unique("key_1")]);
    const sorted = (list: { name: string; unique: boolean; ttl: null }[]) =>
      list.sort((a, b) => a.name.localeCompare(b.name));
    expect(await indexes("conversations")).toEqual(
      sorted([plain("_id_"), unique("dm_key_1"), plain("last_activity_-1__id_-1")]),
    );
    expect(await indexes("participants")).toEqual(
      sorted([
        plain("_id_"),
        unique("conversation_id_1_user_id_1"),
        plain("user_id_1_conversation_id_1"),
        plain("conversation_id_1_delivered_seq_1_user_id_1"),
        plain("conversation_id_1_last_read_seq_1_user_id_1"),
        plain("conversation_id_1_role_1"),
        plain("conversation_id_1_joined_seq_1"),
      ]),
    );
    expect(await indexes("messages")).toEqual(
      sorted([
        plain("_id_"),
        unique("conversation_id_1_seq_1"),
        plain("conversation_id_1_version_seq_1"),
        unique("conversation_id_1_sender_id_1_client_msg_id_1"),
        plain(TEXT_INDEX),
      ]),
    );
  });

  it("replaces the text index of earlier versions (content alone) with one keyed by conversation", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    await db.collection("messages").createIndex({ content: "text" }, { default_language: "none" });
    const store = await openMongoStore(serverUrl, dbName);
    try {
      const names = (await db.collection("messages").indexes()).map((i) => i.name);
      expect(names).toContain(TEXT_INDEX);
      expect(names).not.toContain(OLD_TEXT_INDEX);
      await store.conversations.create(conversation("c-1"), [member("c-1", "u-alice")]);
      const fox = await store.messages.append(draft("c-1", "u-alice", { content: "quick fox" }));
      expect((await store.messages.search("c-1", "fox", 10)).map((m) => m.id)).toEqual([fox.message.id]);
    } finally {
      await store.close();
    }
    // Booted again over the new index: nothing to drop, nothing to build.
    await (await openMongoStore(serverUrl, dbName)).close();
  });

  it("replaces the text index on conversation and content, and gives old messages of unspaced scripts their search_text, once", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const messages = db.collection<{ _id: string; [field: string]: unknown }>("messages");
    await messages.createIndex({ conversation_id: 1, content: "text" }, { default_language: "none" });
    const first = await openMongoStore(serverUrl, dbName);
    const old = async (seq: number, content: string) => {
      const { id, ...rest } = { ...draft("c-1", "u-alice", { content }), seq, version_seq: seq };
      await messages.insertOne({ _id: id, ...rest });
      return id;
    };
    try {
      await first.conversations.create(conversation("c-1"), [member("c-1", "u-alice")]);
    } finally {
      await first.close();
    }
    await db.collection("schema_upgrades").deleteMany({}); // as if written by the version before
    const ja = await old(1, "明日は東京に行きます");
    const en = await old(2, "plain words");
    const store = await openMongoStore(serverUrl, dbName);
    let later = "";
    try {
      const names = (await messages.indexes()).map((i) => i.name);
      expect(names).toContain(TEXT_INDEX);
      expect(names).not.toContain("conversation_id_1_content_text");
      expect((await messages.findOne({ _id: ja }))?.search_text).toBe(" 明 日 は 東 京 に 行 き ま す ");
      expect((await messages.findOne({ _id: en }))?.search_text).toBeUndefined();
      expect((await store.messages.search("c-1", "東京", 10)).map((m) => m.id)).toEqual([ja]);
      expect((await store.messages.search("c-1", "words", 10)).map((m) => m.id)).toEqual([en]);
      expect(Object.keys((await store.messages.byId(ja)) ?? {})).not.toContain("search_text");
      later = await old(3, "大阪");
    } finally {
      await store.close();
    }
    // Done once: a message written afterwards the old way (by a node of an earlier version) stays.
    await (await openMongoStore(serverUrl, dbName)).close();
    expect((await messages.findOne({ _id: later }))?.search_text).toBeUndefined();
  });

  it("searches one conversation reading only its own messages", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const store = await openMongoStore(serverUrl, dbName);
    try {
      await store.conversations.create(conversation("c-1"), [member("c-1", "u-alice")]);
      await store.conversations.create(conversation("c-2"), [member("c-2", "u-alice")]);
      await store.messages.append(draft("c-1", "u-alice", { content: "a fox here" }));
      for (let i = 0; i < 20; i++)
        await store.messages.append(draft("c-2", "u-alice", { content: `fox ${i}` }));
      const explained = await db
        .collection<MessageDoc>("messages")
        .find(searchFilter("c-1", quotedTerms("fox") ?? ""))
        .explain("executionStats");
      // The 20 of c-2 are not read: the index leads with the conversation.
      expect(explained.executionStats?.totalDocsExamined).toBe(1);
      expect(explained.executionStats?.nReturned).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("keys display names stored by earlier versions as nameKey does, once", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const now = Date.now();
    const old = (id: string, display_name: string, display_name_lower: string) => ({
      _id: id,
      email: `${id}@example.com`,
      username: id,
      display_name,
      display_name_lower,
      password_hash: "x",
      status: "offline",
      role: "user",
      last_seen: null,
      created_at: now,
      updated_at: now,
    });
    const users = db.collection<{ _id: string; [field: string]: unknown }>("users");
    await users.insertMany([old("jose", "Jose\u0301 Nfd", "jose\u0301 nfd"), old("al", "Al", "al")]);
    const first = await openMongoStore(serverUrl, dbName);
    try {
      expect((await first.users.list({ prefix: "jos\u00e9", limit: 10 })).map((u) => u.id)).toEqual(["jose"]);
      expect((await first.users.list({ prefix: "al", limit: 10 })).map((u) => u.id)).toEqual(["al"]);
    } finally {
      await first.close();
    }
    // Done once: a key written afterwards the old way (by a node of an earlier version) stays.
    await users.insertOne(old("emile", "E\u0301mile", "e\u0301mile"));
    await (await openMongoStore(serverUrl, dbName)).close();
    expect((await users.findOne({ _id: "emile" }))?.display_name_lower).toBe("e\u0301mile");
  });

  it("stores a magic link's expires_at as a Date, the only type a TTL index expires", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const store = await openMongoStore(serverUrl, dbName);
    try {
      const expiresAt = Date.now() + 15 * 60_000;
      await store.magicLinks.add({
        hash: "m-ttl",
        user_id: "u-1",
        email: "a@example.com",
        created_at: Date.now(),
        expires_at: expiresAt,
        used_at: null,
      });
      const doc = await db.collection("magic_links").findOne({ hash: "m-ttl" });
      expect(doc?.expires_at).toEqual(new Date(expiresAt));
    } finally {
      await store.close();
    }
  });

  it("reads a user written before chosen_status as one who chose online, and before email_verified_at as not verified", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const store = await openMongoStore(serverUrl, dbName);
    try {
      const now = Date.now();
      await db.collection<{ _id: string; [field: string]: unknown }>("users").insertOne({
        _id: "u-old",
        email: "old@example.com",
        username: "old",
        display_name: "old",
        display_name_lower: "old",
        password_hash: "x",
        status: "offline",
        role: "user",
        last_seen: null,
        created_at: now,
        updated_at: now,
      });
      expect((await store.users.byId("u-old"))?.chosen_status).toBe("online");
      const chose = await store.users.update("u-old", { chosen_status: "dnd", updated_at: now + 1 });
      expect(chose).toMatchObject({ status: "offline", chosen_status: "dnd" });
      expect((await store.users.byId("u-old"))?.email_verified_at).toBeNull();
      // A condition on null holds for the field such a document lacks.
      const proved = await store.users.update(
        "u-old",
        { email_verified_at: now + 2, password_hash: null, updated_at: now + 2 },
        { email_verified_at: null },
      );
      expect(proved).toMatchObject({ email_verified_at: now + 2, password_hash: null });
    } finally {
      await store.close();
    }
  });

  it("counts a message's receipts among members written before joined_seq and a conversation before member_count", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const store = await openMongoStore(serverUrl, dbName);
    try {
      const { id, ...old } = conversation("c-old", { conversation_type: "channel", last_seq: 6 });
      await db
        .collection<{ _id: string; [field: string]: unknown }>("conversations")
        .insertOne({ _id: id, ...old });
      const rows = [
        member(id, "u-owner", { role: "owner", delivered_seq: 6, last_read_seq: 6 }),
        member(id, "u-a", { delivered_seq: 5, last_read_seq: 5 }),
        member(id, "u-b", { delivered_seq: 4, last_read_seq: 2 }),
        member(id, "u-new", { joined_seq: 4, delivered_seq: 4, last_read_seq: 4 }),
      ];
      // Written as a version without joined_seq wrote them: all but the last member, who joined at 4.
      await db
        .collection("participants")
        .insertMany(rows.map(({ joined_seq, ...p }) => (p.user_id === "u-new" ? { ...p, joined_seq } : p)));
      expect(await store.conversations.receiptCounts(id, 4, "u-owner")).toEqual({
        recipients: 2,
        delivered: 2,
        read: 1,
      });
    } finally {
      await store.close();
    }
  });

  it("raises positions written below joined_seq to it, once, and leaves members without joined_seq alone", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const { joined_seq: _, ...old } = member("c-1", "u-old", { delivered_seq: 1, last_read_seq: 0 });
    await db
      .collection("participants")
      .insertMany([
        old,
        member("c-1", "u-low", { joined_seq: 4, delivered_seq: 0, last_read_seq: 0 }),
        member("c-1", "u-read-low", { joined_seq: 4, delivered_seq: 6, last_read_seq: 2 }),
        member("c-1", "u-fine", { joined_seq: 4, delivered_seq: 5, last_read_seq: 4 }),
      ]);
    await raisePositionsToJoined(collections(db).participants);
    const found = await db
      .collection("participants")
      .find({}, { projection: { _id: 0, user_id: 1, joined_seq: 1, delivered_seq: 1, last_read_seq: 1 } })
      .sort({ user_id: 1 })
      .toArray();
    expect(found as unknown[]).toEqual([
      { user_id: "u-fine", joined_seq: 4, delivered_seq: 5, last_read_seq: 4 },
      { user_id: "u-low", joined_seq: 4, delivered_seq: 4, last_read_seq: 4 },
      { user_id: "u-old", delivered_seq: 1, last_read_seq: 0 },
      { user_id: "u-read-low", joined_seq: 4, delivered_seq: 6, last_read_seq: 4 },
    ]);
  });

  it("keeps the away or dnd of users written before chosen_status as their choice, once, as SQLite's migration 9", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const now = Date.now();
    const old = (id: string, status: string) => ({
      _id: id,
      email: `${id}@example.com`,
      username: id,
      display_name: id,
      display_name_lower: id,
      password_hash: "x",
      status,
      role: "user",
      last_seen: null,
      created_at: now,
      updated_at: now,
    });
    const users = db.collection<{ _id: string; [field: string]: unknown }>("users");
    await users.insertMany([
      old("away", "away"),
      old("dnd", "dnd"),
      old("offline", "offline"),
      old("online", "online"),
      // Written by this version: its choice stands, whatever its status.
      { ...old("chose", "away"), chosen_status: "online" },
    ]);
    const first = await openMongoStore(serverUrl, dbName);
    try {
      const chosen = async (id: string) => (await first.users.byId(id))?.chosen_status;
      expect(await Promise.all(["away", "dnd", "offline", "online", "chose"].map(chosen))).toEqual([
        "away",
        "dnd",
        "online",
        "online",
        "online",
      ]);
    } finally {
      await first.close();
    }
    // Done once: a document written afterwards without one (by a node of an earlier version) reads online.
    await users.insertOne(old("later", "away"));
    const second = await openMongoStore(serverUrl, dbName);
    try {
      expect((await second.users.byId("later"))?.chosen_status).toBe("online");
    } finally {
      await second.close();
    }
  });

  it("reads a session written before signed_in_by was kept as opened by password, as SQLite's migration 19", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    const now = Date.now();
    const old = {
      _id: "s-old",
      user_id: "u-1",
      device_name: "laptop",
      user_agent: "ua",
      ip: "127.0.0.1",
      created_at: now,
      last_seen_at: now,
      expires_at: now + 3600_000,
      revoked_at: null,
    };
    await db.collection<{ _id: string; [field: string]: unknown }>("sessions").insertOne(old);
    const store = await openMongoStore(serverUrl, dbName);
    try {
      const { _id, ...rest } = old;
      expect(await store.sessions.byId("s-old")).toEqual({ id: "s-old", ...rest, signed_in_by: "password" });
      expect((await store.sessions.listActive("u-1", now)).map((s) => s.signed_in_by)).toEqual(["password"]);
    } finally {
      await store.close();
    }
  });
});

describe("MongoDB display-name keys of earlier versions", () => {
  it("tells a key made by lowercasing alone from nameKey's, and leaves the right ones be", () => {
    // "José" with e + combining acute, keyed before nameKey: lowercase, still decomposed.
    expect(staleNameKey({ display_name: "Jose\u0301", display_name_lower: "jose\u0301" })).toBe("jos\u00e9");
    expect(staleNameKey({ display_name: "Jose\u0301", display_name_lower: "jos\u00e9" })).toBeNull();
    expect(staleNameKey({ display_name: "Al Dente", display_name_lower: "al dente" })).toBeNull();
    // Lowercasing can decompose: "İ" lowercases to i and a combining dot, which NFC keeps as they are.
    expect(staleNameKey({ display_name: "\u0130stanbul", display_name_lower: "i\u0307stanbul" })).toBeNull();
  });
});

describe.skipIf(!url)("MongoDB store shared by two processes", () => {
  const serverUrl = url ?? "";

  it("takes no seq for a change that lost the race to another process's change of the same message", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    let mode: string | undefined;
    // Two stores over one database stand for two nodes: each queues only its own changes.
    const one = await openMongoStore(serverUrl, dbName, { onMode: (m) => (mode = m) });
    const two = await openMongoStore(serverUrl, dbName);
    try {
      if (mode !== "transactions") {
        console.warn("skipped: a standalone server has no transactions, and a lost race keeps its seq there");
        return;
      }
      await one.conversations.create(conversation("c-1"), [member("c-1", "u-alice", { role: "owner" })]);
      const sent = await one.messages.append(draft("c-1", "u-alice"));
      const changes = Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? one : two).messages.change(sent.message.id, (current) => ({
          reactions: [...current.reactions, { user_id: `u${i}`, emoji: "👍" }],
          updated_at: Date.now(),
        })),
      );
      await Promise.all(changes);
      const after = await one.messages.byId(sent.message.id);
      expect(after?.reactions).toHaveLength(12);
      expect((await one.conversations.byId("c-1"))?.last_seq).toBe(1 + 12);
      expect(after?.version_seq).toBe(13);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it("lets no more reactions in than a cap checked inside the change, when two processes add them at once", async () => {
    const db = (await adminClient(serverUrl)).db(dbName);
    await db.dropDatabase();
    // Two stores over one database stand for two nodes: only the change's conditional write keeps them
    // apart (each queues only its own changes). No transaction needed: this holds on a standalone server.
    const one = await openMongoStore(serverUrl, dbName);
    const two = await openMongoStore(serverUrl, dbName);
    try {
      await one.conversations.create(conversation("c-1"), [member("c-1", "u-alice", { role: "owner" })]);
      const sent = await one.messages.append(draft("c-1", "u-alice"));
      const cap = 5;
      // As the messages service's react(): the cap read from the record the change is computed from.
      const changes = Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? one : two).messages.change(sent.message.id, (current) =>
          current.reactions.length >= cap
            ? null
            : {
                reactions: [...current.reactions, { user_id: `u${i}`, emoji: "👍" }],
                updated_at: Date.now(),
              },
        ),
      );
      await Promise.all(changes);
      expect((await one.messages.byId(sent.message.id))?.reactions).toHaveLength(cap);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});
