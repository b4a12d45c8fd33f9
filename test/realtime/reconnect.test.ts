// Nodes cut off from Redis for a moment (a TCP proxy in front of the real Redis drops their connections
// and refuses new ones, while Redis keeps its data), then back: every node must converge to what the store
// says, whatever was said while the word could not cross. Each node is an app of its own over one SQLite
// file (the harness's) and one Redis prefix; the clock is manual, so caches never expire by time here.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { type App, createApp } from "../../src/app.ts";
import { RedisBroker } from "../../src/broker/redis.ts";
import { runCli } from "../../src/cli.ts";
import type { ConversationEvent } from "../../src/client/events.ts";
import { ParleyClient } from "../../src/client/index.ts";
import { closeDeps, createDeps, type Deps } from "../../src/deps.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { bunTopic, topics } from "../../src/realtime/fanout.ts";
import { type RedisProxy, redisProxy } from "../broker/redis-proxy.ts";
import { call, group, type Harness, harness, signup, waitFor } from "../helpers.ts";
import { connect, type Frame, type TestSocket } from "./ws-client.ts";

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const PREFIX = `parley-test-${crypto.randomUUID()}:`;
/** How long a test waits for nodes to reconnect and reconcile (they try Redis again 2 s apart at most). */
const BACK_MS = 5000;

interface Node {
  app: App;
  deps: Deps;
  proxy: RedisProxy;
  base: string;
  logs: string[];
  reconnects: number;
}
type User = Awaited<ReturnType<typeof signup>>;

let h: Harness;
const admin = new Redis(REDIS_URL);
const started: Node[] = [];
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness({ REDIS_URL, REDIS_PREFIX: PREFIX, WS_MAX_CONNECTIONS_PER_USER: "4" });
});
afterAll(async () => {
  for (const s of open) s.close();
  for (const n of started) {
    await n.app.stop(true);
    await closeDeps(n.deps);
    n.proxy.stop();
  }
  await h.close();
  const keys = await admin.keys(`${PREFIX}*`);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
});

/** A broker whose count of a user's last close is applied in Redis but its reply lost, when asked. */
class ReplyLost extends RedisBroker {
  readonly dropReply = new Set<string>();
  override async countSockets(userId: string, delta: 1 | -1 | 0) {
    const total = await super.countSockets(userId, delta);
    if (delta === -1 && this.dropReply.delete(userId)) throw new Error("broker redis: connection lost");
    return total;
  }
}

/** A node whose Redis connections go through a proxy of its own. */
async function node(settleMs = 200, Broker = RedisBroker): Promise<Node> {
  const proxy = redisProxy(REDIS_URL);
  const logs: string[] = [];
  const logger = createLogger(
    "info",
    new Writable({
      write(chunk, _enc, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );
  const broker = new Broker(proxy.url, logger, {
    prefix: PREFIX,
    joinTimeoutMs: 300,
    settleMs,
    emptiedWaitMs: settleMs,
  });
  const deps = await createDeps(h.config, logger, { clock: h.clock, broker });
  const app = createApp(deps);
  app.listen({ port: 0, hostname: "127.0.0.1" });
  const n: Node = { app, deps, proxy, base: `ws://127.0.0.1:${app.server?.port}`, logs, reconnects: 0 };
  broker.onReconnect(() => n.reconnects++);
  started.push(n);
  await broker.ping();
  return n;
}

/** Cuts the node off Redis and waits until it knows. */
async function cut(n: Node) {
  n.proxy.cut();
  await waitFor(() => (n.deps.broker.settled ? undefined : true));
}

async function socket(u: { id: string; session_id: string; token: string }, n: Node): Promise<TestSocket> {
  const s = await connect(`${n.base}/ws/${u.id}/${u.session_id}`, ["parley.msgpack", `bearer.${u.token}`]);
  open.push(s);
  await s.next((f) => f.type === "hello");
  return s;
}

async function closeAll(sockets: TestSocket[]) {
  for (const s of sockets) s.close();
  await Promise.all(sockets.map((s) => s.closed));
}

const presence = (u: User, status: string) => (f: Frame) =>
  f.type === "presence" && f.user_id === u.id && f.status === status;
/** Matches frames the socket gets from now on only. */
const fromNow = (s: TestSocket, match: (f: Frame) => boolean) => {
  const from = s.frames.length;
  return (f: Frame) => match(f) && s.frames.indexOf(f) >= from;
};
const said = (text: string) => (f: Frame) => f.type === "event" && f.message?.content === text;
const statusOf = async (u: User) => (await h.deps.store.users.byId(u.id))?.status;
const listeners = (n: Node, conversationId: string) =>
  n.app.server?.subscriberCount(bunTopic(topics.conversation(conversationId), "msgpack"));

/** Two nodes, and a group of ann's with bo. */
async function twoNodesAndAGroup() {
  const [a, b] = [await node(), await node()];
  const [ann, bo] = [await signup(h.app), await signup(h.app)];
  return { a, b, ann, bo, id: await group(h.app, ann, [bo]) };
}

/** Two nodes: pia on node A, online, watched by wes (who shares a group with her) on node B. */
async function watchedAcross() {
  const [a, b] = [await node(), await node()];
  const [pia, wes] = [await signup(h.app), await signup(h.app)];
  await group(h.app, wes, [pia]);
  const watcher = await socket(wes, b);
  const piaOnA = await socket(pia, a);
  await watcher.next(presence(pia, "online"));
  return { a, b, pia, wes, watcher, piaOnA };
}

describe("a node cut off from Redis for a moment", () => {
  it("drops the counts of the sockets closed meanwhile once it is back, and writes their users offline once", async () => {
    const [a, b] = [await node(), await node()];
    const [yan, xia, wes] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    await group(h.app, wes, [yan, xia]);
    const watcher = await socket(wes, b);
    const yanOnA = [await socket(yan, a), await socket(yan, a), await socket(yan, a)];
    const yanOnB = await socket(yan, b);
    const xiaOnA = await socket(xia, a);
    await watcher.next(presence(yan, "online"));
    await watcher.next(presence(xia, "online"));
    await cut(a);
    // Closed while node A cannot tell Redis; then yan's socket on B, whose count still sees A's three.
    await closeAll([...yanOnA, xiaOnA]);
    await closeAll([yanOnB]);
    await waitFor(async () =>
      (await admin.hget(`${PREFIX}sockets:${yan.id}`, b.deps.broker.nodeId)) === null ? true : undefined,
    );
    expect(await statusOf(yan)).toBe("online");
    // The outage lasts: long enough for node A's client to give up on the commands it held (not an event
    // to wait for, the length of the outage is what the test is about).
    await Bun.sleep(800);
    a.proxy.restore();
    await waitFor(
      async () =>
        (await statusOf(yan)) === "offline" && (await statusOf(xia)) === "offline" ? true : undefined,
      BACK_MS,
    );
    expect(await admin.hgetall(`${PREFIX}sockets:${yan.id}`)).toEqual({});
    expect(await admin.hgetall(`${PREFIX}sockets:${xia.id}`)).toEqual({});
    await watcher.next(presence(yan, "offline"));
    // Yan holds every place again (4): none is held by a socket that is gone.
    const again = [await socket(yan, a), await socket(yan, a), await socket(yan, b), await socket(yan, b)];
    await watcher.next((f) => presence(yan, "online")(f) && watcher.frames.indexOf(f) > 2);
    expect(watcher.frames.filter(presence(yan, "offline"))).toHaveLength(1);
    expect(watcher.frames.filter(presence(xia, "offline"))).toHaveLength(1);
    await closeAll(again);
  }, 30_000);

  it("writes offline a user whose last close Redis counted with its reply lost, and not one back since", async () => {
    const a = await node(200, ReplyLost);
    const b = await node();
    const [ivy, jon, wes] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    await group(h.app, wes, [ivy, jon]);
    const watcher = await socket(wes, b);
    const [ivyOnA, jonOnA] = [await socket(ivy, a), await socket(jon, a)];
    await watcher.next(presence(ivy, "online"));
    await watcher.next(presence(jon, "online"));
    const lossy = a.deps.broker as ReplyLost;
    lossy.dropReply.add(ivy.id).add(jon.id);
    await closeAll([ivyOnA, jonOnA]);
    // Redis counted both closes (and claimed both offline writes for node A), whose replies never came.
    await waitFor(() => (lossy.dropReply.size === 0 ? true : undefined));
    expect(await admin.exists(`${PREFIX}sockets:${ivy.id}`, `${PREFIX}sockets:${jon.id}`)).toBe(0);
    expect([await statusOf(ivy), await statusOf(jon)]).toEqual(["online", "online"]);
    // Jon comes back on node B before node A settles them.
    const jonOnB = await socket(jon, b);
    await a.deps.gateway.tend();
    await watcher.next(presence(ivy, "offline"));
    expect(await statusOf(ivy)).toBe("offline");
    expect(await statusOf(jon)).toBe("online");
    await a.deps.gateway.tend();
    expect(watcher.frames.filter(presence(ivy, "offline"))).toHaveLength(1);
    expect(watcher.frames.filter(presence(jon, "offline"))).toEqual([]);
    await closeAll([jonOnB]);
  }, 30_000);

  it("keeps online a user still connected when Redis comes back empty and their other node's count is not back yet", async () => {
    const [a, b] = [await node(), await node(2000)];
    const wen = await signup(h.app);
    const stays = await socket(wen, a);
    const goes = await socket(wen, b);
    await waitFor(async () => ((await statusOf(wen)) === "online" ? true : undefined));
    await cut(a);
    await cut(b);
    // Redis restarted empty: every count and heartbeat is gone.
    const keys = await admin.keys(`${PREFIX}*`);
    if (keys.length > 0) await admin.del(...keys);
    // B is back first; wen's socket there closes before A has put its count back.
    const before = b.reconnects;
    b.proxy.restore();
    await waitFor(() => (b.reconnects > before ? true : undefined), BACK_MS);
    await closeAll([goes]);
    a.proxy.restore();
    await waitFor(() => (a.deps.broker.settled && b.deps.broker.settled ? true : undefined), BACK_MS);
    // B has settled wen by now (this count is read behind its settle, on the same connection).
    expect(await b.deps.broker.countSockets(wen.id, 0)).toBe(1);
    expect(await statusOf(wen)).toBe("online");
    // And her last socket still makes her offline.
    await closeAll([stays]);
    await waitFor(async () => ((await statusOf(wen)) === "offline" ? true : undefined));
  }, 30_000);

  it("writes back the users it holds whom another node wrote offline while it was cut off past its heartbeat, as they chose", async () => {
    const [a, b] = [await node(), await node()];
    const [kai, lux, max, nia, wes] = [
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
    ];
    await group(h.app, wes, [kai, lux, max, nia]);
    const watcher = await socket(wes, b);
    const [, luxOnA, maxOnA] = [
      await socket(kai, a),
      await socket(lux, a),
      await socket(max, a),
      await socket(nia, a),
    ];
    await watcher.next(presence(kai, "online"));
    await watcher.next(presence(nia, "online"));
    // Lux chose away, max chose to appear offline, both on node A; nia chose dnd over REST on node B,
    // which holds none of her sockets.
    luxOnA.send({ type: "presence_update", ref: 1, status: "away" });
    maxOnA.send({ type: "presence_update", ref: 1, status: "offline" });
    const chose = await call(b.app, "PUT", `/api/users/${nia.id}`, {
      token: nia.token,
      body: { status: "dnd" },
    });
    expect(chose.body).toMatchObject({ status: "dnd", chosen_status: "dnd" });
    await watcher.next(presence(lux, "away"));
    await watcher.next(presence(max, "offline"));
    await watcher.next(presence(nia, "dnd"));
    const maxOnline = fromNow(watcher, presence(max, "online"));
    await cut(a);
    // The cut outlasts node A's heartbeat (deleted here rather than waited for): node B's sweep finds it
    // dead and writes its users offline.
    await admin.del(`${PREFIX}node:${a.deps.broker.nodeId}`);
    await b.deps.gateway.tend();
    await watcher.next(presence(kai, "offline"));
    await watcher.next(presence(lux, "offline"));
    await watcher.next(presence(nia, "offline"));
    expect(await statusOf(kai)).toBe("offline");
    const [kaiBack, luxBack, niaBack] = [
      fromNow(watcher, presence(kai, "online")),
      fromNow(watcher, presence(lux, "away")),
      fromNow(watcher, presence(nia, "dnd")),
    ];
    a.proxy.restore();
    await watcher.next(kaiBack, BACK_MS);
    await watcher.next(luxBack, BACK_MS);
    await watcher.next(niaBack, BACK_MS);
    expect([await statusOf(kai), await statusOf(lux), await statusOf(max), await statusOf(nia)]).toEqual([
      "online",
      "away",
      "offline",
      "dnd",
    ]);
    expect(await admin.hget(`${PREFIX}sockets:${kai.id}`, a.deps.broker.nodeId)).toBe("1");
    expect(watcher.frames.filter(maxOnline)).toEqual([]);
  }, 30_000);

  it("writes back online the users of a node that stalled past its heartbeat, though a count renewed it first", async () => {
    const [a, b] = [await node(), await node()];
    const [kim, nia, wes] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    await group(h.app, wes, [kim, nia]);
    const watcher = await socket(wes, b);
    await socket(kim, a);
    await watcher.next(presence(kim, "online"));
    // Node A stalls, its connections up: its heartbeat expires and node B's sweep writes kim offline.
    await admin.del(`${PREFIX}node:${a.deps.broker.nodeId}`);
    await b.deps.gateway.tend();
    await watcher.next(presence(kim, "offline"));
    const back = fromNow(watcher, presence(kim, "online"));
    // Back, node A counts a socket (which makes its heartbeat again) before its beat runs.
    await socket(nia, a);
    await (a.deps.broker as RedisBroker).beat();
    await watcher.next(back, BACK_MS);
    expect(await statusOf(kim)).toBe("online");
    expect(await b.deps.broker.countSockets(kim.id, 0)).toBe(1);
  }, 30_000);

  it("writes offline, from another node, a user whose offline write a node was handed and died before making", async () => {
    const { a, b, pia, watcher, piaOnA } = await watchedAcross();
    // Her last socket closes on node A, whose store hangs on her offline write: A dies before making it.
    const users = a.deps.store.users;
    const update = users.update.bind(users);
    const hung: (() => void)[] = [];
    users.update = (id, patch) => {
      if (id !== pia.id || patch.status !== "offline") return update(id, patch);
      return new Promise((resolve) => hung.push(() => resolve(null)));
    };
    try {
      await closeAll([piaOnA]);
      await waitFor(() => (hung.length > 0 ? true : undefined));
      expect(await statusOf(pia)).toBe("online");
      await admin.del(`${PREFIX}node:${a.deps.broker.nodeId}`);
      await b.deps.gateway.tend();
      await watcher.next(presence(pia, "offline"));
      expect(await statusOf(pia)).toBe("offline");
    } finally {
      users.update = update;
      for (const release of hung) release();
    }
  }, 30_000);

  it("writes offline, once Redis is back empty, the users whose only sockets were on a node lost meanwhile", async () => {
    const { a, b, pia, watcher } = await watchedAcross();
    // Node A is lost for good (cut off, as one that died), and Redis restarts empty before A's heartbeat
    // expires: no list of nodes is left for a sweep to find A in, nor A's users.
    await cut(a);
    await cut(b);
    const keys = await admin.keys(`${PREFIX}*`);
    if (keys.length > 0) await admin.del(...keys);
    b.proxy.restore();
    // Node B finds Redis emptied as it reconnects, unless the harness's node (connected straight to Redis,
    // with the default waits) found it first, at its beat: a beat and a settle later (13 s) at most.
    await watcher.next(presence(pia, "offline"), 16_000);
    expect(await statusOf(pia)).toBe("offline");
  }, 30_000);

  it("shows a user back on another node whose offline write from their last close here landed after", async () => {
    const { a, b, pia, watcher, piaOnA } = await watchedAcross();
    // Node A's store is slow to write her offline (a round trip to MongoDB, say): held until released.
    const users = a.deps.store.users;
    const update = users.update.bind(users);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let writing = false;
    users.update = (id, patch) => {
      if (id !== pia.id || patch.status !== "offline") return update(id, patch);
      writing = true;
      return held.then(() => update(id, patch));
    };
    try {
      await closeAll([piaOnA]);
      await waitFor(() => (writing ? true : undefined));
      // Back on node B meanwhile: her first socket there finds her shown still, and writes nothing.
      await socket(pia, b);
      const shownAgain = fromNow(watcher, presence(pia, "online"));
      release();
      await watcher.next(presence(pia, "offline"));
      await watcher.next(shownAgain, BACK_MS);
      expect(await statusOf(pia)).toBe("online");
    } finally {
      users.update = update;
      release();
    }
  }, 30_000);

  it("writes offline a user whose first socket closed before its hello, shown meanwhile from another node", async () => {
    const [a, b] = [await node(), await node()];
    const [pia, wes] = [await signup(h.app), await signup(h.app)];
    await group(h.app, wes, [pia]);
    const watcher = await socket(wes, b);
    // Her first socket on node A is counted, and held before its hello (its conversations being read).
    const conversations = a.deps.store.conversations;
    const idsForUser = conversations.idsForUser.bind(conversations);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reading = false;
    conversations.idsForUser = async (userId) => {
      if (userId === pia.id) {
        reading = true;
        await held;
      }
      return idsForUser(userId);
    };
    try {
      const s = await connect(`${a.base}/ws/${pia.id}/${pia.session_id}`, [
        "parley.msgpack",
        `bearer.${pia.token}`,
      ]);
      await waitFor(() => (reading ? true : undefined));
      // A status she chose over REST on node B is shown: she has a socket (counted on A).
      const chose = await call(b.app, "PUT", `/api/users/${pia.id}`, {
        token: pia.token,
        body: { status: "away" },
      });
      expect(chose.body.status).toBe("away");
      await watcher.next(presence(pia, "away"));
      s.close();
      await s.closed;
      release();
      await watcher.next(presence(pia, "offline"), BACK_MS);
      expect(await statusOf(pia)).toBe("offline");
    } finally {
      conversations.idsForUser = idsForUser;
      release();
    }
  }, 30_000);

  it("writes offline, once its store takes writes again, a user of a dead node whose offline write it refused", async () => {
    const [a, b] = [await node(), await node()];
    const ola = await signup(h.app);
    await socket(ola, a);
    await waitFor(async () => ((await statusOf(ola)) === "online" ? true : undefined));
    // Node A dies (its heartbeat gone); node B sweeps it while its store refuses writes (a full disk).
    await admin.del(`${PREFIX}node:${a.deps.broker.nodeId}`);
    const users = b.deps.store.users;
    const update = users.update.bind(users);
    let refused = 0;
    users.update = async () => {
      refused++;
      throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
    };
    try {
      await b.deps.gateway.tend();
    } finally {
      users.update = update;
    }
    expect(refused).toBeGreaterThan(0);
    expect(await statusOf(ola)).toBe("online");
    // The sweep handed ola out once: B keeps her, and writes her offline when it next tends.
    await b.deps.gateway.tend();
    expect(await statusOf(ola)).toBe("offline");
  }, 30_000);

  it("closes the sockets of sessions revoked meanwhile, on it and on the other nodes (4501)", async () => {
    const [a, b] = [await node(), await node()];
    const zoe = await signup(h.app);
    const session = async () => {
      const res = await call(h.app, "POST", "/api/auth/signin", {
        body: { email: zoe.email, password: zoe.password },
      });
      expect(res.status).toBe(200);
      return { ...zoe, token: res.body.access_token as string, session_id: res.body.session_id as string };
    };
    const [phone, laptop] = [await session(), await session()];
    const onA = await socket(phone, a);
    const onB = await socket(laptop, b);
    await cut(a);
    // Revoked through B: node A does not hear it. Revoked through A: nobody does.
    expect((await call(b.app, "POST", "/api/auth/signout", { token: phone.token })).status).toBe(204);
    expect((await call(a.app, "POST", "/api/auth/signout", { token: laptop.token })).status).toBe(204);
    a.proxy.restore();
    const closed = await Promise.race([
      Promise.all([onA.closed, onB.closed]),
      Bun.sleep(BACK_MS).then(() => null),
    ]);
    expect(closed?.map((c) => c.code)).toEqual([4501, 4501]);
  }, 30_000);

  it("takes the sockets of members removed meanwhile out of the conversation, on it and on the other nodes", async () => {
    const [a, b] = [await node(), await node()];
    const [ann, bo, cy] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const id = await group(h.app, ann, [bo, cy]);
    const owner = await socket(ann, b);
    const boOnA = await socket(bo, a);
    const cyOnB = await socket(cy, b);
    // Node B knows cy as a member (she sent) and would keep that answer under this clock.
    cyOnB.send({ type: "message", ref: 1, conversation_id: id, client_msg_id: "c-1", content: "hi" });
    await cyOnB.next((f) => f.type === "ack" && f.ref === 1);
    await cut(a);
    // Removed through the harness's node: A does not hear it. Removed through A: nobody does.
    const path = (u: User) => `/api/conversations/${id}/participants/${u.id}`;
    expect((await call(h.app, "DELETE", path(bo), { token: ann.token })).status).toBe(204);
    expect((await call(a.app, "DELETE", path(cy), { token: ann.token })).status).toBe(204);
    a.proxy.restore();
    await waitFor(() => (listeners(a, id) === 0 && listeners(b, id) === 1 ? true : undefined), BACK_MS);
    owner.send({ type: "message", conversation_id: id, client_msg_id: "o-1", content: "members only" });
    await owner.next(said("members only"));
    cyOnB.send({ type: "message", ref: 2, conversation_id: id, client_msg_id: "c-2", content: "still?" });
    expect(await cyOnB.next((f) => f.ref === 2)).toMatchObject({ type: "error", code: "not_found" });
    await Bun.sleep(30);
    expect(boOnA.frames.filter(said("members only"))).toEqual([]);
    expect(cyOnB.frames.filter(said("members only"))).toEqual([]);
  }, 30_000);

  it("checks every socket and joins its channels though one store read fails, and retries the reads that failed", async () => {
    const [a, b] = [await node(), await node()];
    const [ann, bo, cy, zoe] = [
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
    ];
    const id = await group(h.app, ann, [bo]);
    const annOnA = await socket(ann, a);
    const boOnA = await socket(bo, a);
    const zoeOnA = await socket(zoe, a);
    await socket(cy, b);
    await cut(a);
    // Meanwhile: bo removed and zoe's session revoked on other nodes, and a conversation made on node A,
    // whose channel it could not join.
    const path = `/api/conversations/${id}/participants/${bo.id}`;
    expect((await call(h.app, "DELETE", path, { token: ann.token })).status).toBe(204);
    expect((await call(b.app, "POST", "/api/auth/signout", { token: zoe.token })).status).toBe(204);
    const made = await group(a.app, ann, [cy]);
    await annOnA.next((f) => f.type === "event" && f.kind === "conversation.created");
    // The store fails once to read zoe's session, and once to read ann's conversations.
    const { sessions, conversations } = a.deps.store;
    const [byId, idsForUser] = [sessions.byId.bind(sessions), conversations.idsForUser.bind(conversations)];
    const failOnce = new Set([zoe.session_id, ann.id]);
    const flaky = async (key: string) => {
      if (failOnce.delete(key)) throw new Error("store: read failed");
    };
    sessions.byId = async (sessionId) => flaky(sessionId).then(() => byId(sessionId));
    conversations.idsForUser = async (userId) => flaky(userId).then(() => idsForUser(userId));
    try {
      a.proxy.restore();
      // The rest of the pass ran: bo is out (ann stays), and the channel of the conversation made meanwhile
      // joined.
      await waitFor(
        () =>
          listeners(a, id) === 1 && a.deps.broker.joined.has(topics.conversation(made)) ? true : undefined,
        BACK_MS,
      );
      expect(failOnce.size).toBe(0);
      // And zoe's session, whose read failed, is read again a moment later: her socket closes.
      const closed = await Promise.race([zoeOnA.closed, Bun.sleep(BACK_MS).then(() => null)]);
      expect(closed?.code).toBe(4501);
      expect(boOnA.ws.readyState).toBe(WebSocket.OPEN);
      expect(a.logs.filter((l) => l.includes("reconcile after a reconnect")).length).toBe(1);
    } finally {
      sessions.byId = byId;
      conversations.idsForUser = idsForUser;
    }
  }, 30_000);

  it("delivers live, both ways, a conversation made on it meanwhile, and counts what it could not publish as dropped", async () => {
    const [a, b] = [await node(), await node()];
    const [dan, eve] = [await signup(h.app), await signup(h.app)];
    const danOnA = await socket(dan, a);
    const eveOnB = await socket(eve, b);
    await cut(a);
    const published = a.deps.metrics.broker.published.get();
    // A counter with no series yet renders no line: 0.
    const dropped = () =>
      Number(/parley_broker_dropped_total (\d+)/.exec(a.deps.metrics.registry.render())?.[1] ?? 0);
    const droppedBefore = dropped();
    const id = await group(a.app, dan, [eve]);
    await danOnA.next((f) => f.type === "event" && f.kind === "conversation.created");
    // Node A's join of the conversation's channel timed out, and it says so.
    await waitFor(() => (a.logs.some((l) => l.includes("could not join a channel")) ? true : undefined));
    expect(a.logs.some((l) => l.includes("relayed message dropped"))).toBe(false);
    expect(a.deps.metrics.broker.published.get()).toBe(published);
    expect(dropped()).toBeGreaterThan(droppedBefore);
    a.proxy.restore();
    const channel = topics.conversation(id);
    await waitFor(
      () => (a.deps.broker.joined.has(channel) && b.deps.broker.joined.has(channel) ? true : undefined),
      BACK_MS,
    );
    await Promise.all([a.deps.broker.join([channel]), b.deps.broker.join([channel])]);
    expect(listeners(b, id)).toBe(1);
    eveOnB.send({ type: "message", conversation_id: id, client_msg_id: "e-1", content: "from eve" });
    await danOnA.next(said("from eve"));
    danOnA.send({ type: "message", conversation_id: id, client_msg_id: "d-1", content: "from dan" });
    await eveOnB.next(said("from dan"));
  }, 30_000);
});

describe("what a node could not tell the others while cut off", () => {
  /** Counts node B's store reads for a reconcile, by whom they are about, from now on. */
  function readsOn(n: Node) {
    const { sessions, conversations } = n.deps.store;
    const [byId, idsForUser] = [sessions.byId.bind(sessions), conversations.idsForUser.bind(conversations)];
    const reads = { sessions: 0, users: [] as string[] };
    sessions.byId = async (id) => {
      reads.sessions++;
      return byId(id);
    };
    conversations.idsForUser = async (userId) => {
      reads.users.push(userId);
      return idsForUser(userId);
    };
    return {
      reads,
      stop() {
        sessions.byId = byId;
        conversations.idsForUser = idsForUser;
      },
    };
  }

  /** Cuts node A off, runs `meanwhile`, and waits until A is back (its reconnect is done). */
  async function cutWhile(a: Node, meanwhile: () => Promise<void>) {
    await cut(a);
    await meanwhile();
    const before = a.reconnects;
    a.proxy.restore();
    await waitFor(() => (a.reconnects > before ? true : undefined), BACK_MS);
  }

  it("is told once it is back, and the others look at that alone: nothing, if nothing was missed", async () => {
    const [a, b] = [await node(), await node()];
    const [ann, bo, cy, dan] = [
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
    ];
    const id = await group(h.app, ann, [bo, cy]);
    await group(h.app, dan, [ann]);
    for (const u of [ann, bo, cy, dan]) await socket(u, b);
    await socket(ann, a);
    const spy = readsOn(b);
    try {
      await cutWhile(a, async () => {});
      // A's reconnect is done: whatever it had to say is on its way to B.
      await a.deps.broker.ping();
      await Bun.sleep(200);
      expect(spy.reads).toEqual({ sessions: 0, users: [] });
      // Cy is removed through A while it is cut off: B is told once A is back, and looks at the members
      // of that conversation only (dan's sockets are in none of it), and at no session.
      await cutWhile(a, async () => {
        const path = `/api/conversations/${id}/participants/${cy.id}`;
        expect((await call(a.app, "DELETE", path, { token: ann.token })).status).toBe(204);
      });
      await waitFor(() => (listeners(b, id) === 2 ? true : undefined), BACK_MS);
      expect(spy.reads.sessions).toBe(0);
      expect(spy.reads.users).toContain(cy.id);
      expect(spy.reads.users).not.toContain(dan.id);
      // Deleted through A while it is cut off: B's sockets that listen to it leave it.
      await cutWhile(a, async () => {
        expect((await call(a.app, "DELETE", `/api/conversations/${id}`, { token: ann.token })).status).toBe(
          204,
        );
      });
      await waitFor(() => (listeners(b, id) === 0 ? true : undefined), BACK_MS);
      expect(spy.reads.users).not.toContain(dan.id);
    } finally {
      spy.stop();
    }
  }, 30_000);

  it("tells its sockets where their conversations' logs stand once it hears the others again", async () => {
    const { a, b, ann, bo, id } = await twoNodesAndAGroup();
    const quiet = await group(h.app, ann, [bo]);
    const annOnA = await socket(ann, a);
    await cutWhile(a, async () => {
      const sent = await call(b.app, "POST", `/api/conversations/${id}/messages`, {
        token: bo.token,
        body: { content: "while A was deaf" },
      });
      expect(sent.status).toBe(201);
    });
    // What B published while A could not hear never came; where the logs stand does, in one frame.
    const heads = await annOnA.next((f) => f.type === "heads", BACK_MS);
    expect(heads.conversations).toEqual({ [id]: 1, [quiet]: 0 });
    expect(annOnA.frames.filter(said("while A was deaf"))).toEqual([]);
  }, 30_000);

  it("tells the others' sockets where the logs stand of the conversations whose changes it could not relay", async () => {
    const { a, b, ann, bo, id } = await twoNodesAndAGroup();
    const annOnA = await socket(ann, a);
    const boOnB = await socket(bo, b);
    await cutWhile(a, async () => {
      annOnA.send({ type: "message", ref: 1, conversation_id: id, client_msg_id: "m-1", content: "unheard" });
      expect(await annOnA.next((f) => f.ref === 1)).toMatchObject({ type: "ack", seq: 1 });
    });
    expect(await boOnB.next((f) => f.type === "heads", BACK_MS)).toMatchObject({
      conversations: { [id]: 1 },
    });
    expect(boOnB.frames.filter(said("unheard"))).toEqual([]);
  }, 30_000);

  it("brings an SDK client on it the changes it missed, with no later change to show the hole", async () => {
    const { a, b, ann, bo, id } = await twoNodesAndAGroup();
    const client = new ParleyClient({ baseUrl: a.base.replace("ws://", "http://") });
    try {
      await client.signin({ email: ann.email, password: ann.password });
      const events: ConversationEvent[] = [];
      client.on("event", (e) => events.push(e));
      await client.connect();
      await cutWhile(a, async () => {
        const sent = await call(b.app, "POST", `/api/conversations/${id}/messages`, {
          token: bo.token,
          body: { content: "caught up" },
        });
        expect(sent.status).toBe(201);
      });
      const got = await waitFor(() => events.find((e) => e.message?.content === "caught up"), BACK_MS);
      expect(got).toMatchObject({ conversation_id: id, seq: 1, replayed: true });
      expect(client.realtime.positions[id]).toBe(1);
    } finally {
      client.close();
    }
  }, 30_000);

  it("refuses a key exchange it cannot relay to a device elsewhere, and delivers one to a device here", async () => {
    const { a, b, ann, bo } = await twoNodesAndAGroup();
    const signin = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: bo.email, password: bo.password },
    });
    const laptop = { ...bo, token: signin.body.access_token as string, session_id: signin.body.session_id };
    const [annOnA, boLaptopOnA] = [await socket(ann, a), await socket(laptop, a)];
    await socket(bo, b);
    const payload = new Uint8Array([1, 2, 3]);
    await cutWhile(a, async () => {
      annOnA.send({
        type: "key_exchange",
        ref: "b",
        to_user_id: bo.id,
        to_device_id: bo.session_id,
        payload,
      });
      expect(await annOnA.next((f) => f.ref === "b")).toMatchObject({ type: "error", code: "unavailable" });
      annOnA.send({
        type: "key_exchange",
        ref: "a",
        to_user_id: bo.id,
        to_device_id: laptop.session_id,
        payload,
      });
      expect(await annOnA.next((f) => f.ref === "a")).toMatchObject({ type: "ok" });
      expect(await boLaptopOnA.next((f) => f.type === "key_exchange")).toMatchObject({
        from_user_id: ann.id,
      });
      // To all of bo's devices: one is here, so it is not refused (sent again, that one would have it twice).
      annOnA.send({ type: "key_exchange", ref: "all", to_user_id: bo.id, payload });
      expect(await annOnA.next((f) => f.ref === "all")).toMatchObject({ type: "ok" });
    });
  }, 30_000);

  it("refuses an announcement it cannot relay, sending it to nobody, and sends it everywhere once it can", async () => {
    const [a, b] = [await node(), await node()];
    const admin = await signup(h.app);
    expect(await runCli(["admin", "grant", admin.username], h.config, () => {})).toBe(0);
    const listeners: TestSocket[] = [];
    for (const n of [a, b]) {
      const s = await connect(`${n.base}/ws/public/outage-news`, ["parley.msgpack"]);
      open.push(s);
      s.send({ type: "subscribe", ref: "s", channel: "outage-news" });
      await s.next((f) => f.type === "ok" && f.ref === "s");
      listeners.push(s);
    }
    const announce = (text: string) =>
      call(a.app, "POST", "/api/announcements", {
        token: admin.token,
        body: { channel: "outage-news", text },
      });
    await cutWhile(a, async () => {
      const refused = await announce("unheard");
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe("unavailable");
      expect(refused.headers.get("retry-after")).toBe("5");
    });
    // Sent again once node A has Redis: each subscriber has it once, the refused one nowhere.
    expect((await announce("heard")).status).toBe(201);
    for (const s of listeners) {
      await s.next((f) => f.type === "announcement" && f.text === "heard");
      expect(s.frames.filter((f) => f.type === "announcement").map((f) => f.text)).toEqual(["heard"]);
    }
  }, 30_000);

  it("is told again, once it hears the others, the presence changes they relayed meanwhile", async () => {
    const [a, b] = [await node(), await node()];
    const [pia, wes] = [await signup(h.app), await signup(h.app)];
    await group(h.app, wes, [pia]);
    const watcher = await socket(wes, a);
    const piaOnB = await socket(pia, b);
    await watcher.next(presence(pia, "online"));
    await cutWhile(a, async () => {
      piaOnB.send({ type: "presence_update", ref: "away", status: "away" });
      await piaOnB.next((f) => f.ref === "away");
      expect(await statusOf(pia)).toBe("away");
    });
    await watcher.next(presence(pia, "away"), BACK_MS);
  }, 30_000);

  it("tells the others' sockets the presence changes it could not relay", async () => {
    const { a, pia, watcher, piaOnA } = await watchedAcross();
    await cutWhile(a, async () => {
      piaOnA.send({ type: "presence_update", ref: "away", status: "away" });
      await piaOnA.next((f) => f.ref === "away");
      expect(await statusOf(pia)).toBe("away");
    });
    await watcher.next(presence(pia, "away"), BACK_MS);
  }, 30_000);
});

describe("a node whose Redis is slow", () => {
  it("joins, when it next tends, a channel its sockets listen to whose join timed out with Redis connected", async () => {
    const [a, b] = [await node(), await node()];
    const [dan, eve] = [await signup(h.app), await signup(h.app)];
    const danOnA = await socket(dan, a);
    const eveOnB = await socket(eve, b);
    const reconnects = a.reconnects;
    // Redis answers node A late: dan is added to a conversation (node A hears of it), and node A's
    // subscription to its channel times out. The connection stays up, so no reconnect follows.
    a.proxy.stall();
    const id = await group(h.app, eve, [dan]);
    await danOnA.next((f) => f.type === "event" && f.kind === "conversation.created");
    await waitFor(() => (a.logs.some((l) => l.includes("could not join a channel")) ? true : undefined));
    a.proxy.restore();
    await a.deps.broker.ping();
    const channel = topics.conversation(id);
    expect(listeners(a, id)).toBe(1);
    expect(a.deps.broker.joined.has(channel)).toBe(false);
    await a.deps.gateway.tend();
    expect(a.deps.broker.joined.has(channel)).toBe(true);
    expect(a.reconnects).toBe(reconnects);
    eveOnB.send({ type: "message", conversation_id: id, client_msg_id: "e-1", content: "slow but there" });
    await danOnA.next(said("slow but there"));
  }, 30_000);
});
