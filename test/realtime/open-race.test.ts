// What a socket reads from the store as it opens (its session, its conversations) may be overtaken by a
// change made before it is open: a revocation or a removal made meanwhile, on its node or another, must not
// be undone by the older read.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Redis } from "ioredis";
import { type App, createApp } from "../../src/app.ts";
import { ID_BYTES } from "../../src/broker/redis.ts";
import { closeDeps, createDeps, type Deps } from "../../src/deps.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { topics } from "../../src/realtime/fanout.ts";
import { SUBPROTOCOLS } from "../../src/realtime/frames.ts";
import { RELAY } from "../../src/realtime/relay.ts";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import type { Store } from "../../src/store/types.ts";
import { call, group, type Harness, harness, signup } from "../helpers.ts";
import { connect, type Frame } from "./ws-client.ts";

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

type Held = "conversations" | "session";
type Slow = ReturnType<typeof slowStore>;

/** A store whose next read of one kind, once held, answers only when released (a slow store). */
function slowStore(inner: Store) {
  const holds = new Map<Held, { entered: () => void; release: Promise<void> }>();
  const after = async <T>(kind: Held, read: Promise<T>): Promise<T> => {
    const value = await read;
    const hold = holds.get(kind);
    if (hold) {
      holds.delete(kind);
      hold.entered();
      await hold.release;
    }
    return value;
  };
  const store: Store = {
    ...inner,
    sessions: { ...inner.sessions, byId: (id) => after("session", inner.sessions.byId(id)) },
    conversations: {
      ...inner.conversations,
      idsForUser: (userId) => after("conversations", inner.conversations.idsForUser(userId)),
    },
  };
  return {
    store,
    /** Holds the next read of that kind; resolves once it has read, with the function that lets it answer. */
    holdNext(kind: Held): Promise<() => void> {
      let release = () => {};
      return new Promise((entered) => {
        holds.set(kind, {
          entered: () => entered(release),
          release: new Promise<void>((r) => {
            release = r;
          }),
        });
      });
    },
  };
}

type User = Awaited<ReturnType<typeof signup>>;
const open = (app: App, u: User) =>
  connect(`ws://127.0.0.1:${app.server?.port}/ws/${u.id}/${u.session_id}`, [
    SUBPROTOCOLS.json,
    `bearer.${u.token}`,
  ]);

/**
 * Carol's socket on `app` reads her conversations; alice removes her meanwhile through `remover` (and
 * `relayed`, given carol's id, resolves once that removal has gone out to the other nodes); then alice
 * writes. Answers what of that message reached carol, once it has reached bob, on carol's node.
 */
async function removedWhileOpening(
  app: App,
  remover: App,
  slow: Slow,
  relayed: (userId: string) => Promise<{ out: Promise<void> }> = async () => ({ out: Promise.resolve() }),
): Promise<Frame[]> {
  const [alice, bob, carol] = [await signup(remover), await signup(remover), await signup(remover)];
  const id = await group(remover, alice, [bob, carol]);
  const b = await open(app, bob);
  await b.next((f) => f.type === "hello");
  const { out } = await relayed(carol.id);
  const reading = slow.holdNext("conversations");
  const c = await open(app, carol);
  // The socket has read its conversations (this one among them) and not yet listened to them.
  const release = await reading;
  const removed = await call(remover, "DELETE", `/api/conversations/${id}/participants/${carol.id}`, {
    token: alice.token,
  });
  expect(removed.status).toBe(204);
  await out;
  release();
  await c.next((f) => f.type === "hello");
  const sent = await call(remover, "POST", `/api/conversations/${id}/messages`, {
    token: alice.token,
    body: { content: "not for carol any more" },
  });
  expect(sent.status).toBe(201);
  const isIt = (f: Frame) => f.type === "event" && f.kind === "message.created" && f.conversation_id === id;
  // Bob, on carol's node, has it: had it been published to carol there too, it would come before a pong.
  await b.next(isIt);
  c.send({ type: "ping", ref: "after" });
  await c.next((f) => f.type === "pong" && f.ref === "after");
  for (const s of [b, c]) s.close();
  await Promise.all([b.closed, c.closed]);
  return c.frames.filter(isIt);
}

describe("a socket opening on one node", () => {
  let h: Harness;
  const slow = slowStore(openSqliteStore(":memory:"));
  beforeAll(async () => {
    h = await harness({}, { store: slow.store });
    h.app.listen({ port: 0, hostname: "127.0.0.1" });
  });
  afterAll(async () => {
    await h.app.stop(true);
    await h.close();
  });

  it("keeps a socket out of a conversation its user was removed from while it opened", async () => {
    expect(await removedWhileOpening(h.app, h.app, slow)).toEqual([]);
  });

  it("closes a socket whose session was revoked while its upgrade was on its way (4501)", async () => {
    const carol = await signup(h.app);
    const reading = slow.holdNext("session");
    const opening = open(h.app, carol);
    // The upgrade has read the session, live, and not yet opened the socket.
    const release = await reading;
    const other = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: carol.email, password: carol.password },
    });
    const revoked = await call(h.app, "DELETE", `/api/auth/sessions/${carol.session_id}`, {
      token: other.body.access_token,
    });
    expect(revoked.status).toBe(204);
    release();
    const c = await opening;
    const closed = await Promise.race([c.closed, Bun.sleep(2000).then(() => null)]);
    expect(closed?.code).toBe(4501);
  });
});

describe("a socket opening on one node of two", () => {
  let h: Harness;
  let nodeB: { app: App; deps: Deps };
  let slow: Slow;
  beforeAll(async () => {
    h = await harness({ REDIS_URL });
    slow = slowStore(openSqliteStore(join(h.dataDir, "parley.db")));
    const deps = await createDeps(h.config, createLogger("silent"), { clock: h.clock, store: slow.store });
    nodeB = { app: createApp(deps), deps };
    h.app.listen({ port: 0, hostname: "127.0.0.1" });
    nodeB.app.listen({ port: 0, hostname: "127.0.0.1" });
  });
  afterAll(async () => {
    await nodeB.app.stop(true);
    await h.app.stop(true);
    await closeDeps(nodeB.deps);
    await h.close();
  });

  it("keeps it out of a conversation its user was removed from on the other node while it opened", async () => {
    // The removal's word to the user's nodes is out (Redis has passed it on) before the socket's node
    // has its read back.
    const listener = new Redis(REDIS_URL);
    try {
      const relayed = async (userId: string) => {
        const out = new Promise<void>((resolve) =>
          listener.on("messageBuffer", (_channel: Buffer, message: Buffer) => {
            if (message[ID_BYTES] === RELAY.leave) resolve();
          }),
        );
        await listener.subscribe(`${h.config.REDIS_PREFIX}${topics.user(userId)}`);
        return { out };
      };
      expect(await removedWhileOpening(nodeB.app, h.app, slow, relayed)).toEqual([]);
    } finally {
      listener.disconnect();
    }
  });
});
