// The membership cache in front of the store: answers from memory, sees writes made through the watched
// store at once, and re-reads what was written elsewhere (another node) after a second; a node alone,
// which makes every write itself, after a minute.

import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { ManualClock } from "../../../src/lib/clock.ts";
import {
  MembershipCache,
  REVALIDATE_ALONE_MS,
  REVALIDATE_MS,
} from "../../../src/modules/conversations/membership.ts";
import { openSqliteStore } from "../../../src/store/sqlite/index.ts";
import type { Store } from "../../../src/store/types.ts";
import { call, group, type Harness, harness, rejection, signup } from "../../helpers.ts";
import { conversation, member } from "../../store/conversations-contract.ts";

const code = async (p: Promise<unknown>) => (await rejection(p)).code;

describe("MembershipCache", () => {
  let raw: Store;
  let store: Store;
  let clock: ManualClock;
  let cache: MembershipCache;

  beforeEach(async () => {
    raw = openSqliteStore(":memory:");
    clock = new ManualClock();
    cache = new MembershipCache(raw, clock);
    store = cache.watch(raw);
    await store.conversations.create(conversation("c-1", { conversation_type: "channel" }), [
      member("c-1", "alice", { role: "owner" }),
      member("c-1", "bob"),
    ]);
  });
  afterEach(() => raw.close());

  it("answers with the conversation's type and the member's role", async () => {
    expect(await cache.require("c-1", "alice")).toMatchObject({
      conversation_type: "channel",
      role: "owner",
    });
    expect(await cache.require("c-1", "bob")).toMatchObject({ conversation_type: "channel", role: "member" });
  });

  it("answers 404 for a non-member and for a conversation that does not exist", async () => {
    expect(await code(cache.require("c-1", "carol"))).toBe("not_found");
    expect(await code(cache.require("c-nope", "alice"))).toBe("not_found");
  });

  it("answers from memory: a change behind its back shows only after a second", async () => {
    await cache.require("c-1", "bob");
    // Written to the store directly, as another node would: this cache is not told.
    await raw.conversations.removeParticipant("c-1", "bob");
    expect(await cache.require("c-1", "bob")).toMatchObject({ role: "member" });
    clock.advance(999);
    expect(await cache.require("c-1", "bob")).toMatchObject({ role: "member" });
    clock.advance(1);
    expect(await code(cache.require("c-1", "bob"))).toBe("not_found");
  });

  it("on a node alone, re-reads what it knows only after a minute, and still sees its own writes at once", async () => {
    const alone = new MembershipCache(raw, clock, REVALIDATE_ALONE_MS);
    const aloneStore = alone.watch(raw);
    await alone.require("c-1", "bob");
    await raw.conversations.setRole("c-1", "bob", "admin"); // behind its back: cannot happen alone
    clock.advance(REVALIDATE_ALONE_MS - 1);
    expect(await alone.require("c-1", "bob")).toMatchObject({ role: "member" });
    clock.advance(1);
    expect(await alone.require("c-1", "bob")).toMatchObject({ role: "admin" });

    await aloneStore.conversations.removeParticipant("c-1", "bob");
    expect(await code(alone.require("c-1", "bob"))).toBe("not_found");
  });

  it("sees every membership write made through the watched store at once", async () => {
    await cache.require("c-1", "bob");
    await store.conversations.setRole("c-1", "bob", "admin");
    expect(await cache.require("c-1", "bob")).toMatchObject({ role: "admin" });

    await store.conversations.removeParticipant("c-1", "bob");
    expect(await code(cache.require("c-1", "bob"))).toBe("not_found");

    expect(await code(cache.require("c-1", "carol"))).toBe("not_found");
    await store.conversations.addParticipant(member("c-1", "carol"));
    expect(await cache.require("c-1", "carol")).toMatchObject({ role: "member" });

    await cache.require("c-1", "alice");
    await store.conversations.delete("c-1");
    expect(await code(cache.require("c-1", "alice"))).toBe("not_found");
  });

  it("keeps no answer read before a write that ended after the read started", async () => {
    // bob's participant row is read, then the read is held back while he is removed.
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow: Store = {
      ...raw,
      conversations: {
        ...raw.conversations,
        async participant(conversationId, userId) {
          const row = await raw.conversations.participant(conversationId, userId);
          await held;
          return row;
        },
      },
    };
    const racing = new MembershipCache(slow, clock);
    const watched = racing.watch(raw);
    const pending = racing.require("c-1", "bob");
    await watched.conversations.removeParticipant("c-1", "bob");
    release();
    // The read began while bob was a member, so it answers as of then...
    expect(await pending).toMatchObject({ role: "member" });
    // ...but it was not kept: the next question goes to the store, which says he has left.
    expect(await code(racing.require("c-1", "bob"))).toBe("not_found");
  });

  it("leaves the other repositories and the conversation reads as they were", async () => {
    expect(store.messages).toBe(raw.messages);
    expect(store.users).toBe(raw.users);
    expect((await store.conversations.byId("c-1"))?.conversation_type).toBe("channel");
    expect((await store.conversations.participants("c-1")).map((p) => p.user_id).sort()).toEqual([
      "alice",
      "bob",
    ]);
  });
});

describe("a node's membership cache", () => {
  const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

  /** Bob sends; another writer of the store, which this node is not told of, removes him; when is he refused? */
  async function refusedAfter(h: Harness, removeElsewhere: (conv: string, user: string) => Promise<unknown>) {
    const alice = await signup(h.app);
    const bob = await signup(h.app);
    const conv = await group(h.app, alice, [bob]);
    const send = async (content: string) =>
      (
        await call(h.app, "POST", `/api/conversations/${conv}/messages`, {
          token: bob.token,
          body: { content },
        })
      ).status;
    expect(await send("one")).toBe(201);
    await removeElsewhere(conv, bob.id);
    for (let waited = 0; ; waited += 1000) {
      const status = await send(`after ${waited} ms`);
      if (status === 404) return waited;
      expect(status).toBe(201);
      h.clock.advance(1000);
    }
  }

  it.each([
    ["alone (it holds DATA_DIR), trusts what it knows for a minute", {}, REVALIDATE_ALONE_MS],
    ["with a shared broker, for a second", { REDIS_URL }, REVALIDATE_MS],
  ] as const)("%s", async (_, env, window) => {
    const h = await harness(env);
    try {
      const waited = await refusedAfter(h, async (conv, user) => {
        const other = openSqliteStore(join(h.config.DATA_DIR, "parley.db"));
        await other.conversations.removeParticipant(conv, user);
        await other.close();
      });
      expect(waited).toBe(window);
    } finally {
      await h.close();
    }
  });

  it("over a store it was given, without a shared broker, for a second: it cannot know who else writes it", async () => {
    const given = openSqliteStore(":memory:");
    const h = await harness({}, { store: given });
    try {
      // Written to the store itself, not through the node's watched view of it.
      const waited = await refusedAfter(h, (conv, user) => given.conversations.removeParticipant(conv, user));
      expect(waited).toBe(REVALIDATE_MS);
    } finally {
      await h.close();
    }
  });
});
