// Group commit on SQLite: one transaction per turn of the event loop, each caller told after its commit,
// a bad write failing alone. Then the writes that go through it besides appends: presence (users.update),
// session touches, receipts and message changes.

import { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupCommit } from "../../src/store/sqlite/group-commit.ts";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { DuplicateError, type Store } from "../../src/store/types.ts";
import { conversation, draft, member } from "./conversations-contract.ts";

const T0 = Date.UTC(2026, 0, 1);

function table() {
  const db = new Database(":memory:", { strict: true });
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  const insert = db.query<never, [string, number]>("INSERT INTO t (k, v) VALUES (?, ?)");
  const rows = () =>
    db
      .query<{ k: string }, []>("SELECT k FROM t ORDER BY k")
      .all()
      .map((r) => r.k);
  return { db, insert, rows };
}

/** A WAL file open on two connections, as two processes sharing it have it. */
function shared() {
  const file = join(mkdtempSync(join(tmpdir(), "parley-gc-")), "t.db");
  const db = new Database(file, { strict: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA busy_timeout = 5000");
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  const other = new Database(file, { strict: true });
  other.exec("PRAGMA busy_timeout = 5000");
  const insert = db.query<never, [string, number]>("INSERT INTO t (k, v) VALUES (?, ?)");
  const close = () => {
    db.close();
    other.close();
    rmSync(join(file, ".."), { recursive: true, force: true });
  };
  return { db, other, insert, close };
}

describe("groupCommit with the file's write lock held elsewhere", () => {
  it("waits for it with the event loop free, then commits", async () => {
    const { db, other, insert, close } = shared();
    try {
      const write = groupCommit(db, (k: string) => insert.run(k, 1).changes);
      other.exec("BEGIN IMMEDIATE"); // another process in the middle of its commit
      const start = performance.now();
      let settled = false;
      const answer = write("a").finally(() => {
        settled = true;
      });
      // Timers keep firing on time while the batch waits: SQLite's busy handler would have slept 5 s.
      await Bun.sleep(30);
      expect(performance.now() - start).toBeLessThan(1000);
      expect(settled).toBe(false);
      const more = write("b"); // joins the waiting batch
      other.exec("COMMIT");
      expect(await Promise.all([answer, more])).toEqual([1, 1]);
      // The connection's own wait, for its other writes, is as it was.
      expect(db.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()?.timeout).toBe(5000);
    } finally {
      close();
    }
  });

  it("fails the batch's writes with SQLITE_BUSY when it stays taken past busyMs", async () => {
    const { db, other, insert, close } = shared();
    try {
      const write = groupCommit(db, (k: string) => insert.run(k, 1).changes, { busyMs: 50 });
      other.exec("BEGIN IMMEDIATE");
      const err = await write("a").then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      expect(err?.code).toStartWith("SQLITE_BUSY");
      other.exec("COMMIT");
      // The next batch goes through.
      expect(await write("b")).toBe(1);
    } finally {
      close();
    }
  });
});

describe("groupCommit", () => {
  it("writes what arrives in one turn in one transaction, and answers after it", async () => {
    const { db, insert, rows } = table();
    const commits: string[][] = [];
    const write = groupCommit(
      db,
      (k: string) => {
        expect(db.inTransaction).toBe(true);
        insert.run(k, 1);
        return k.toUpperCase();
      },
      { afterCommit: () => commits.push(rows()) },
    );
    const answers = Promise.all(["a", "b", "c"].map(write));
    expect(rows()).toEqual([]); // nothing written before the turn ends
    expect(await answers).toEqual(["A", "B", "C"]);
    expect(commits).toEqual([["a", "b", "c"]]);
    expect(db.inTransaction).toBe(false);
    db.close();
  });

  it("holds at most maxBatch writes per transaction", async () => {
    const { db, insert, rows } = table();
    const commits: string[][] = [];
    const write = groupCommit(db, (k: string) => insert.run(k, 1), {
      maxBatch: 2,
      afterCommit: () => commits.push(rows()),
    });
    await Promise.all(["a", "b", "c", "d", "e"].map(write));
    expect(commits).toEqual([
      ["a", "b"],
      ["a", "b", "c", "d"],
      ["a", "b", "c", "d", "e"],
    ]);
    db.close();
  });

  it("fails a bad write alone: the others in its batch are committed", async () => {
    const { db, insert, rows } = table();
    const write = groupCommit(db, ([k, v]: [string, number]) => {
      insert.run(k, v);
      if (v < 0) throw new RangeError(`negative ${k}`);
      return k;
    });
    const results = await Promise.allSettled([
      write(["a", 1]),
      write(["b", -1]),
      write(["a", 2]),
      write(["c", 3]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    expect(String((results[1] as PromiseRejectedResult).reason)).toContain("negative b");
    expect(String((results[2] as PromiseRejectedResult).reason)).toContain("UNIQUE");
    // b's insert was rolled back with its transaction.
    expect(rows()).toEqual(["a", "c"]);
    db.close();
  });

  it("refuses a batch size that is not a positive integer", () => {
    const { db } = table();
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => groupCommit(db, () => 1, { maxBatch: bad })).toThrow(/maxBatch/);
    db.close();
  });
});

/** A user row with test defaults. */
const user = (n: number) => ({
  id: `u${n}`,
  email: `u${n}@example.com`,
  username: `user${n}`,
  display_name: `User ${n}`,
  password_hash: "x",
  email_verified_at: null,
  status: "offline" as const,
  chosen_status: "online" as const,
  role: "user" as const,
  last_seen: null,
  created_at: 1,
  updated_at: 1,
});

/** A store in memory for the test, closed after it. */
async function withStore(test: (store: Store) => Promise<void>) {
  const store = openSqliteStore(":memory:");
  try {
    await test(store);
  } finally {
    await store.close();
  }
}

describe("sqlite users.update under group commit", () => {
  it("applies a storm of presence changes, in order, and fails only the update that takes a username", async () => {
    await withStore(async (store) => {
      for (let n = 0; n < 50; n++) await store.users.create(user(n));
      // Written at the end of the turn with the rest of its batch, not at the call.
      const first = store.users.update("u3", { status: "away", updated_at: 2 });
      expect((await store.users.byId("u3"))?.status).toBe("offline");
      expect((await first)?.status).toBe("away");
      const updates = Array.from({ length: 50 }, (_, n) =>
        store.users.update(`u${n}`, { status: "online", updated_at: 2 }),
      );
      const taken = store.users.update("u1", { username: "user2", updated_at: 3 });
      const later = store.users.update("u0", { status: "offline", last_seen: 4, updated_at: 4 });
      const done = await Promise.allSettled([...updates, taken, later]);
      expect(done.filter((d) => d.status === "rejected").length).toBe(1);
      expect((done[50] as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateError);
      const u0 = await store.users.byId("u0");
      expect([u0?.status, u0?.last_seen]).toEqual(["offline", 4]);
      expect((await store.users.byId("u1"))?.username).toBe("user1");
      expect((await store.users.byId("u49"))?.status).toBe("online");
      expect((done[49] as PromiseFulfilledResult<unknown>).value).toMatchObject({
        id: "u49",
        status: "online",
      });
    });
  });
});

describe("sqlite sessions.touch under group commit", () => {
  it("writes the touches of one turn together, after the turn, forward only", async () => {
    await withStore(async (store) => {
      await store.users.create(user(1));
      const session = (n: number) => ({
        id: `s${n}`,
        user_id: "u1",
        device_name: "d",
        user_agent: "ua",
        ip: "127.0.0.1",
        created_at: 1,
        last_seen_at: 10,
        expires_at: 1_000_000,
        revoked_at: null,
        signed_in_by: "password" as const,
      });
      for (let n = 0; n < 20; n++) await store.sessions.create(session(n));
      const touches = Array.from({ length: 20 }, (_, n) => store.sessions.touch(`s${n}`, 100 + n));
      // Not yet written: it goes with the rest of the turn's touches.
      expect((await store.sessions.byId("s0"))?.last_seen_at).toBe(10);
      await Promise.all(touches);
      expect((await store.sessions.byId("s0"))?.last_seen_at).toBe(100);
      expect((await store.sessions.byId("s19"))?.last_seen_at).toBe(119);
      // An older time never moves it back.
      await store.sessions.touch("s19", 50);
      expect((await store.sessions.byId("s19"))?.last_seen_at).toBe(119);
    });
  });
});

describe("sqlite receipts under group commit", () => {
  it("writes a turn's read and delivered marks together, after the turn, each forward only", async () => {
    await withStore(async (store) => {
      const members = ["u-alice", "u-bob", "u-carol"].map((u) => member("c-1", u));
      await store.conversations.create(conversation("c-1"), members);
      const marks = [
        store.conversations.markDelivered("c-1", "u-alice", 5, T0 + 1),
        store.conversations.markRead("c-1", "u-bob", 4, T0 + 2),
        store.conversations.markDelivered("c-1", "u-bob", 2, T0 + 3), // behind bob's read: no effect
        store.conversations.markRead("c-1", "u-nobody", 4, T0 + 4), // not a member: null
      ];
      // Not yet written: it goes with the rest of the turn's receipts.
      expect((await store.conversations.participant("c-1", "u-alice"))?.delivered_seq).toBe(0);
      const [alice, bob, bobAgain, nobody] = await Promise.all(marks);
      expect([alice?.delivered_seq, alice?.last_read_seq]).toEqual([5, 0]);
      expect([bob?.delivered_seq, bob?.last_read_seq]).toEqual([4, 4]);
      expect([bobAgain?.delivered_seq, bobAgain?.delivered_at]).toEqual([4, T0 + 2]);
      expect(nobody).toBeNull();
      const carol = await store.conversations.participant("c-1", "u-carol");
      expect([carol?.delivered_seq, carol?.last_read_seq]).toEqual([0, 0]);
    });
  });
});

describe("sqlite message changes under group commit", () => {
  it("applies a turn's changes to one message in order, each on the one before, after the turn", async () => {
    await withStore(async (store) => {
      await store.conversations.create(conversation("c-1"), [member("c-1", "u-alice")]);
      const sent = await store.messages.append(draft("c-1", "u-alice"));
      const id = sent.message.id;
      const reactions = Array.from({ length: 20 }, (_, n) =>
        store.messages.change(id, (current) => ({
          reactions: [...current.reactions, { user_id: `u-${n}`, emoji: "👍" }],
          updated_at: T0 + n,
        })),
      );
      // Not yet written: it goes with the rest of the turn's changes.
      expect((await store.messages.byId(id))?.reactions).toEqual([]);
      const results = await Promise.all(reactions);
      expect(results.map((r) => r?.version_seq)).toEqual(Array.from({ length: 20 }, (_, n) => n + 2));
      const stored = await store.messages.byId(id);
      expect(stored?.reactions.map((r) => r.user_id)).toEqual(Array.from({ length: 20 }, (_, n) => `u-${n}`));
      expect(stored?.version_seq).toBe(21);
    });
  });
});
