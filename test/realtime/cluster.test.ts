// Two nodes of one cluster: two apps, each its own server, store connection, caches and Redis broker, over
// one SQLite file and the real Redis (what two processes of one deployment share). Clients on different
// nodes must see each other as if on one. The clock is manual: the nodes' caches never expire by time
// here, so what one node learns of another's changes it can only have learnt through the broker. The
// nodes share a Redis prefix of this run's own: other runs on the shared Redis are other deployments.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Redis } from "ioredis";
import { type App, createApp } from "../../src/app.ts";
import { MemoryBroker, MemoryBus } from "../../src/broker/memory.ts";
import { RedisBroker } from "../../src/broker/redis.ts";
import { runCli } from "../../src/cli.ts";
import { closeDeps, createDeps, type Deps } from "../../src/deps.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { bunTopic, topics } from "../../src/realtime/fanout.ts";
import type { Encoding } from "../../src/realtime/frames.ts";
import { NODE_WIDE, RELAY, relayMessage } from "../../src/realtime/relay.ts";
import { call, group, type Harness, harness, signup, TEST_SECRET, waitFor } from "../helpers.ts";
import { start } from "../server-process.ts";
import {
  burst,
  connect,
  type Frame,
  type TestSocket,
  UPGRADE_HEADERS,
  upgradeStatus,
  userSocket,
} from "./ws-client.ts";

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const PREFIX = `parley-test-${crypto.randomUUID()}:`;
const admin = new Redis(REDIS_URL);

let h: Harness;
let nodeB: { app: App; deps: Deps };
const base: Record<"a" | "b", string> = { a: "", b: "" };
type User = Awaited<ReturnType<typeof signup>>;
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness({ REDIS_URL, REDIS_PREFIX: PREFIX });
  const deps = await createDeps(h.config, createLogger("silent"), { clock: h.clock });
  nodeB = { app: createApp(deps), deps };
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  nodeB.app.listen({ port: 0, hostname: "127.0.0.1" });
  base.a = `ws://127.0.0.1:${h.app.server?.port}`;
  base.b = `ws://127.0.0.1:${nodeB.app.server?.port}`;
});
afterAll(async () => {
  for (const s of open) s.close();
  await nodeB.app.stop(true);
  await h.app.stop(true);
  await closeDeps(nodeB.deps);
  await h.close();
  const keys = await admin.keys(`${PREFIX}*`);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
});

const socket = (u: User, node: "a" | "b", encoding: Encoding = "msgpack") =>
  userSocket(base[node], u, encoding, open);
/** The users whose offline write the node was handed and has not said it made. */
function owedBy(deps: Deps): Promise<string[]> {
  return admin.smembers(`${PREFIX}owed:${(deps.broker as RedisBroker).nodeId}`);
}
const event = (kind: string, conversation: string) => (f: Frame) =>
  f.type === "event" && f.kind === kind && f.conversation_id === conversation;
const said = (text: string) => (f: Frame) => f.type === "event" && f.message?.content === text;

describe("two nodes", () => {
  it("delivers a message sent on one node to members on the other, in every encoding", async () => {
    const [alice, bob, carol, dave] = [
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
    ];
    const id = await group(h.app, alice, [bob, carol, dave]);
    const sender = await socket(alice, "a");
    const [binary, text] = [await socket(bob, "b"), await socket(carol, "b", "json")];
    const records = await socket(dave, "b", "msgpackr");
    const published = h.deps.metrics.broker.published.get();
    const received = nodeB.deps.metrics.broker.received.get();
    sender.send({ type: "message", ref: 1, conversation_id: id, client_msg_id: "m-1", content: "across" });
    const ack = await sender.next((f) => f.type === "ack" && f.ref === 1);
    const [got, gotText] = [await binary.next(said("across")), await text.next(said("across"))];
    // The node-to-node traffic is counted on both sides (metrics).
    expect(h.deps.metrics.broker.published.get()).toBeGreaterThan(published);
    expect(nodeB.deps.metrics.broker.received.get()).toBeGreaterThan(received);
    expect(got.seq).toBe(ack.seq);
    expect(gotText.message.id).toBe(ack.message_id);
    // Node B made the records frame from the plain bytes it was relayed: the same event.
    expect(await records.next(said("across"))).toEqual(got);
    // And back: a reply sent on node B reaches node A.
    binary.send({ type: "message", conversation_id: id, client_msg_id: "m-2", content: "and back" });
    await sender.next(said("and back"));
    await binary.next(event("message.created", id));
    records.send({
      type: "message",
      ref: 2,
      conversation_id: id,
      client_msg_id: "m-3",
      content: "in records",
    });
    expect(await records.next((f) => f.type === "ack" && f.ref === 2)).toMatchObject({
      client_msg_id: "m-3",
    });
    await sender.next(said("in records"));
    // Typing crosses too; nobody gets a frame twice.
    text.send({ type: "typing_start", conversation_id: id });
    await sender.next((f) => f.type === "typing" && f.user_id === carol.id);
    await Bun.sleep(30);
    expect(binary.frames.filter(said("across"))).toHaveLength(1);
    expect(sender.frames.filter(said("and back"))).toHaveLength(1);
  });

  it("brings a member added on one node into the conversation on the other, and lets a removed one go", async () => {
    const [alice, bob, dave] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const owner = await socket(alice, "a");
    const newcomer = await socket(dave, "b");
    const added = await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: alice.token,
      body: { user_id: dave.id },
    });
    expect(added.status).toBe(201);
    await newcomer.next(event("participant.added", id));
    owner.send({ type: "message", conversation_id: id, client_msg_id: "welcome", content: "welcome" });
    await newcomer.next(said("welcome"));
    // Node B knew dave as a member (he sent); once removed on node A, node B must refuse him at once.
    newcomer.send({ type: "message", ref: 7, conversation_id: id, client_msg_id: "hi", content: "hi" });
    await newcomer.next((f) => f.type === "ack" && f.ref === 7);
    const removed = await call(h.app, "DELETE", `/api/conversations/${id}/participants/${dave.id}`, {
      token: alice.token,
    });
    expect(removed.status).toBe(204);
    await newcomer.next(event("participant.removed", id));
    newcomer.send({
      type: "message",
      ref: 8,
      conversation_id: id,
      client_msg_id: "still?",
      content: "still?",
    });
    const refused = await newcomer.next((f) => f.ref === 8);
    expect(refused).toMatchObject({ type: "error", code: "not_found" });
    owner.send({ type: "message", conversation_id: id, client_msg_id: "gone", content: "after dave left" });
    await owner.next(said("after dave left"));
    await Bun.sleep(30);
    expect(newcomer.frames.filter(said("after dave left"))).toEqual([]);
  });

  it("brings a channel's reader added on one node into it on the other, telling no other member, and lets them go", async () => {
    const [owner, reader, dave] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [reader.id] },
    });
    const id = made.body.id as string;
    const [o, r] = [await socket(owner, "a"), await socket(reader, "a", "json")];
    // Node B listens to nothing of the channel: the add's word must bring dave's socket there into it.
    const newcomer = await socket(dave, "b");
    const added = await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: owner.token,
      body: { user_id: dave.id },
    });
    expect(added.status).toBe(201);
    expect(await newcomer.next(event("participant.added", id))).toMatchObject({
      seq: 0,
      user_id: dave.id,
      joined_seq: 0,
    });
    o.send({ type: "message", conversation_id: id, client_msg_id: "welcome", content: "welcome" });
    await newcomer.next(said("welcome"));
    await r.next(said("welcome"));
    const removed = await call(h.app, "DELETE", `/api/conversations/${id}/participants/${dave.id}`, {
      token: owner.token,
    });
    expect(removed.status).toBe(204);
    expect(await newcomer.next(event("participant.removed", id))).toMatchObject({ seq: 0, user_id: dave.id });
    o.send({ type: "message", conversation_id: id, client_msg_id: "gone", content: "after dave left" });
    await r.next(said("after dave left"));
    await Bun.sleep(30);
    expect(newcomer.frames.filter(said("after dave left"))).toEqual([]);
    for (const encoding of ["msgpack", "json"] as const)
      expect(nodeB.app.server?.subscriberCount(bunTopic(topics.conversation(id), encoding))).toBe(0);
    // The other reader heard nothing of dave, nor did the log keep a word of him.
    expect(r.frames.filter((f) => JSON.stringify(f).includes(dave.id))).toEqual([]);
    const log = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: owner.token });
    expect(log.body.items.map((m: { content: string }) => m.content)).toEqual(["welcome", "after dave left"]);
  });

  it("brings a socket opening on one node into a conversation its user is added to on the other meanwhile, though the node tends then", async () => {
    const [alice, dave] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [await signup(h.app)]);
    // As node A reads dave's conversations for his opening socket, it tends (every 10 s, so it may be then)
    // and node B adds him to the group: the word of it comes on dave's channel, which A joined before the read.
    const conversations = h.deps.store.conversations;
    const idsForUser = conversations.idsForUser.bind(conversations);
    conversations.idsForUser = async (userId) => {
      const ids = await idsForUser(userId);
      if (userId !== dave.id) return ids;
      conversations.idsForUser = idsForUser;
      await h.deps.gateway.tend();
      const added = await call(nodeB.app, "POST", `/api/conversations/${id}/participants`, {
        token: alice.token,
        body: { user_id: dave.id },
      });
      expect(added.status).toBe(201);
      await Bun.sleep(50);
      return ids;
    };
    try {
      const newcomer = await socket(dave, "a");
      const owner = await socket(alice, "b");
      owner.send({ type: "message", conversation_id: id, client_msg_id: "in", content: "are you in?" });
      await newcomer.next(said("are you in?"));
    } finally {
      conversations.idsForUser = idsForUser;
    }
  });

  it("takes the sockets of the other node out of a conversation deleted on one", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const owner = await socket(alice, "a");
    const member = await socket(bob, "b", "json");
    const deleted = await call(h.app, "DELETE", `/api/conversations/${id}`, { token: alice.token });
    expect(deleted.status).toBe(204);
    await member.next(event("conversation.deleted", id));
    for (const encoding of ["msgpack", "json"] as const)
      expect(nodeB.app.server?.subscriberCount(bunTopic(topics.conversation(id), encoding))).toBe(0);
    member.send({ type: "typing_start", ref: "t", conversation_id: id });
    expect(await member.next((f) => f.type === "error" && f.ref === "t")).toMatchObject({
      code: "not_found",
    });
    await owner.next(event("conversation.deleted", id));
  });

  it("keeps a user online while they have a socket on any node", async () => {
    const [erin, frank] = [await signup(h.app), await signup(h.app)];
    await group(h.app, erin, [frank]);
    const watcher = await socket(frank, "a");
    const onA = await socket(erin, "a");
    const onB = await socket(erin, "b");
    await watcher.next((f) => f.type === "presence" && f.user_id === erin.id && f.status === "online");
    onA.close();
    await onA.closed;
    await Bun.sleep(50);
    expect(watcher.frames.filter((f) => f.type === "presence" && f.status === "offline")).toEqual([]);
    onB.close();
    await watcher.next((f) => f.type === "presence" && f.user_id === erin.id && f.status === "offline");
    // Node B, handed her offline write, said it made it: a sweep of B would not hand it on.
    await waitFor(async () => ((await owedBy(nodeB.deps)).includes(erin.id) ? undefined : true));
  });

  it("ends a user's status and choice alike, and their peers on every node shown it last, when two nodes write their choices at once", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    await group(h.app, alice, [bob]);
    const watchers = { a: await socket(bob, "a"), b: await socket(bob, "b") };
    const mine = { a: await socket(alice, "a"), b: await socket(alice, "b") };
    const users = h.deps.store.users;
    const conversations = h.deps.store.conversations;
    const [update, showChosen, peersOf] = [
      users.update.bind(users),
      users.showChosen.bind(users),
      conversations.peersOf.bind(conversations),
    ];
    const ofAlice = (f: Frame) => f.type === "presence" && f.user_id === alice.id;
    let ref = 0;
    /** Node B writes her choice, and its frame reaches her peers on both nodes. */
    const chooseOnB = async (status: string) => {
      const from = { a: watchers.a.frames.length, b: watchers.b.frames.length };
      const r = `b${++ref}`;
      mine.b.send({ type: "presence_update", ref: r, status });
      await mine.b.next((f) => f.ref === r);
      for (const node of ["a", "b"] as const)
        await waitFor(() =>
          watchers[node].frames.slice(from[node]).some((f) => ofAlice(f) && f.status === status)
            ? true
            : undefined,
        );
    };
    /** Once, as node A is about to make `point` for her: node B's choice lands first. */
    let between: (() => Promise<void>) | undefined;
    const pause = async () => {
      const run = between;
      between = undefined;
      await run?.();
    };
    // Node A's store: the write that shows her choice (made on what it read before, or in one step), and
    // the look-up of whom to tell once her presence is written.
    users.update = async (id, patch, only) => {
      if (id === alice.id && patch.status !== undefined && patch.chosen_status === undefined) await pause();
      return update(id, patch, only);
    };
    users.showChosen = async (id, now) => {
      if (id === alice.id) await pause();
      return showChosen(id, now);
    };
    conversations.peersOf = async (id) => {
      const peers = await peersOf(id);
      if (id === alice.id) await pause();
      return peers;
    };
    try {
      const statuses = ["online", "away", "dnd"] as const;
      for (let round = 0; round < 8; round++) {
        const before = (await users.byId(alice.id))?.status;
        const [x, y] = statuses.filter((st) => st !== before);
        if (!x || !y) throw new Error("no two other statuses");
        between = () => chooseOnB(y);
        if (round % 2 === 0) {
          // On node A by a socket: written before node B's, told after it.
          const r = `a${++ref}`;
          mine.a.send({ type: "presence_update", ref: r, status: x });
          await mine.a.next((f) => f.ref === r);
        } else {
          // On node A over REST: the choice written, then shown, node B's landing in between.
          const put = await call(h.app, "PUT", `/api/users/${alice.id}`, {
            token: alice.token,
            body: { status: x },
          });
          expect(put.status).toBe(200);
        }
        expect(between).toBeUndefined();
        await Bun.sleep(150);
        const user = await users.byId(alice.id);
        expect(user?.chosen_status).toBe(user?.status as (typeof statuses)[number]);
        for (const node of ["a", "b"] as const)
          expect(watchers[node].frames.filter(ofAlice).at(-1)).toMatchObject({ status: user?.status });
      }
    } finally {
      users.update = update;
      users.showChosen = showChosen;
      conversations.peersOf = peersOf;
    }
  });

  it("closes a session's sockets on every node when it is revoked on one", async () => {
    const gina = await signup(h.app);
    const onB = await socket(gina, "b");
    // Node B has checked the session (the upgrade) and would keep its answer under this clock.
    expect((await call(nodeB.app, "GET", "/api/auth/me", { token: gina.token })).status).toBe(200);
    const out = await call(h.app, "POST", "/api/auth/signout", { token: gina.token });
    expect(out.status).toBe(204);
    expect((await onB.closed).code).toBe(4501);
    expect((await call(nodeB.app, "GET", "/api/auth/me", { token: gina.token })).status).toBe(401);
  });

  it("delivers an announcement made on one node to a public channel's subscribers on the other", async () => {
    const admin = await signup(h.app);
    expect(await runCli(["admin", "grant", admin.username], h.config, () => {})).toBe(0);
    const listener = await connect(`${base.b}/ws/public/sports`, ["parley.json"]);
    open.push(listener);
    // `ok` comes once node B listens to the channel on Redis too.
    listener.send({ type: "subscribe", ref: "s", channel: "cluster-news" });
    await listener.next((f) => f.type === "ok" && f.ref === "s");
    const res = await call(h.app, "POST", "/api/announcements", {
      token: admin.token,
      body: { channel: "cluster-news", text: "both nodes" },
    });
    expect(res.status).toBe(201);
    expect(await listener.next((f) => f.type === "announcement")).toMatchObject({
      channel: "cluster-news",
      text: "both nodes",
    });
  });

  it("writes offline the users whose only sockets were on a node that died", async () => {
    const [kim, lee] = [await signup(h.app), await signup(h.app)];
    await group(h.app, kim, [lee]);
    const watcher = await socket(lee, "a");
    // A third node, to die: it holds kim's only socket.
    const doomed = await createDeps(h.config, createLogger("silent"), { clock: h.clock });
    const app = createApp(doomed);
    app.listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const s = await connect(`ws://127.0.0.1:${app.server?.port}/ws/${kim.id}/${kim.session_id}`, [
        "parley.msgpack",
        `bearer.${kim.token}`,
      ]);
      open.push(s);
      await watcher.next((f) => f.type === "presence" && f.user_id === kim.id && f.status === "online");
      // It dies: its heartbeat is gone and nobody closes its sockets.
      await admin.del(`${PREFIX}node:${doomed.broker.nodeId}`);
      await h.deps.gateway.tend();
      await watcher.next((f) => f.type === "presence" && f.user_id === kim.id && f.status === "offline");
      expect((await h.deps.store.users.byId(kim.id))?.status).toBe("offline");
      await waitFor(async () => ((await owedBy(h.deps)).includes(kim.id) ? undefined : true));
    } finally {
      await app.stop(true);
      await closeDeps(doomed);
    }
  });

  it("counts a user's sockets on every node against WS_MAX_CONNECTIONS_PER_USER", async () => {
    const capped = { ...h.config, WS_MAX_CONNECTIONS_PER_USER: 2 };
    const nodes = await Promise.all(
      [0, 1].map(async () => {
        const deps = await createDeps(capped, createLogger("silent"), { clock: h.clock });
        const app = createApp(deps);
        app.listen({ port: 0, hostname: "127.0.0.1" });
        return { deps, app, base: `ws://127.0.0.1:${app.server?.port}` };
      }),
    );
    try {
      const mia = await signup(h.app);
      const path = `/ws/${mia.id}/${mia.session_id}`;
      const protocols = ["parley.msgpack", `bearer.${mia.token}`];
      for (const n of nodes) {
        const s = await connect(`${n.base}${path}`, protocols);
        open.push(s);
        await s.next((f) => f.type === "hello");
      }
      // One on each node: the third is refused on either, though neither holds two.
      await waitFor(async () =>
        (await nodes[0]?.deps.broker.countSockets(mia.id, 0)) === 2 ? true : undefined,
      );
      for (const n of nodes)
        expect(await upgradeStatus(`${n.base}${path}`, { authorization: `Bearer ${mia.token}` })).toBe(429);
    } finally {
      for (const n of nodes) {
        await n.app.stop(true);
        await closeDeps(n.deps);
      }
    }
  });

  it("holds WS_MAX_CONNECTIONS_PER_USER against a burst of upgrades, on one node and across two", async () => {
    const limit = 4;
    const capped = { ...h.config, WS_MAX_CONNECTIONS_PER_USER: limit };
    const nodes = await Promise.all(
      [0, 1].map(async () => {
        const deps = await createDeps(capped, createLogger("silent"), { clock: h.clock });
        const app = createApp(deps);
        app.listen({ port: 0, hostname: "127.0.0.1" });
        return { deps, app, base: `ws://127.0.0.1:${app.server?.port}` };
      }),
    );
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    try {
      const [solo, spread] = [await signup(h.app), await signup(h.app)];
      const at = (u: User, n: typeof a) => `${n.base}/ws/${u.id}/${u.session_id}`;
      const bearer = (u: User) => ["parley.msgpack", `bearer.${u.token}`];
      // 30 at once on one node, then 30 at once over both: the limit holds, counted in Redis from the upgrade.
      const one = await burst(Array(30).fill(at(solo, a)), bearer(solo));
      open.push(...one);
      expect(one.length).toBe(limit);
      const two = await burst(
        Array.from({ length: 30 }, (_, i) => at(spread, i % 2 ? b : a)),
        bearer(spread),
      );
      open.push(...two);
      expect(two.length).toBe(limit);
      const refused = () =>
        a.deps.metrics.rateLimited.get(["ws_connections"]) +
        b.deps.metrics.rateLimited.get(["ws_connections"]);
      expect(refused()).toBe(2 * (30 - limit));
      // The refused upgrades left nothing counted: what is open is what counts, and presence follows it.
      for (const u of [solo, spread]) {
        expect(await a.deps.broker.countSockets(u.id, 0)).toBe(limit);
        await waitFor(async () =>
          (await h.deps.store.users.byId(u.id))?.status === "online" ? true : undefined,
        );
      }
      for (const s of [...one, ...two]) s.close();
      for (const u of [solo, spread]) {
        await waitFor(async () => ((await a.deps.broker.countSockets(u.id, 0)) === 0 ? true : undefined));
        await waitFor(async () =>
          (await h.deps.store.users.byId(u.id))?.status === "offline" ? true : undefined,
        );
      }
    } finally {
      for (const n of nodes) {
        await n.app.stop(true);
        await closeDeps(n.deps);
      }
    }
  });

  it("leaves a user typing through one node when a socket of theirs that typed before on the other closes", async () => {
    const [ona, pat] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, ona, [pat]);
    const watcher = await socket(pat, "b");
    const [first, second] = [await socket(ona, "a"), await socket(ona, "b")];
    const typing = (state: string) => (f: Frame) =>
      f.type === "typing" && f.user_id === ona.id && f.state === state;
    first.send({ type: "typing_start", conversation_id: id });
    await watcher.next(typing("start"));
    second.send({ type: "typing_start", ref: "t", conversation_id: id });
    await second.next((f) => f.ref === "t");
    await waitFor(() => (watcher.frames.filter(typing("start")).length === 2 ? true : undefined));
    first.close();
    await waitFor(() => (h.deps.gateway.connections.ofUser(ona.id).size === 0 ? true : undefined));
    // Whatever node A published as that socket closed reaches node B before a message it relays after.
    const owner = await socket(ona, "a");
    owner.send({ type: "message", conversation_id: id, client_msg_id: "after", content: "after the close" });
    await watcher.next(said("after the close"));
    expect(watcher.frames.filter(typing("stop"))).toEqual([]);
    second.send({ type: "typing_stop", conversation_id: id });
    await watcher.next(typing("stop"));
  });

  it("ends on the other node, at once, what a user typed through a socket that closed", async () => {
    const [sid, tess] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, sid, [tess]);
    const watcher = await socket(tess, "b");
    const typist = await socket(sid, "a");
    typist.send({ type: "typing_start", conversation_id: id });
    await watcher.next((f) => f.type === "typing" && f.user_id === sid.id && f.state === "start");
    const closedAt = Date.now();
    typist.close();
    const stop = await watcher.next((f) => f.type === "typing" && f.user_id === sid.id && f.state === "stop");
    expect(stop.conversation_id).toBe(id);
    // Well before the start would have expired (6 s), or node B ended it itself (7 s).
    expect(Date.now() - closedAt).toBeLessThan(2000);
  });

  it("ends what a channel admin typed through one node when they are made a reader on the other", async () => {
    const [uma, vic, wes] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: uma.token,
      body: { conversation_type: "channel", participant_ids: [vic.id, wes.id], name: "desk" },
    });
    const id = made.body.id as string;
    const role = (role: string) =>
      call(nodeB.app, "PUT", `/api/conversations/${id}/participants/${vic.id}`, {
        token: uma.token,
        body: { role },
      });
    expect((await role("admin")).status).toBe(200);
    const typist = await socket(vic, "a");
    const watcher = await socket(wes, "b");
    typist.send({ type: "typing_start", conversation_id: id });
    await watcher.next((f) => f.type === "typing" && f.user_id === vic.id && f.state === "start");
    const demotedAt = Date.now();
    expect((await role("member")).status).toBe(200);
    await watcher.next((f) => f.type === "typing" && f.user_id === vic.id && f.state === "stop");
    expect(Date.now() - demotedAt).toBeLessThan(2000);
  });

  it("ends, on the other nodes, what a user typed through a node that died, a moment after it would have expired", async () => {
    const [quin, ray] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, quin, [ray]);
    const watcher = await socket(ray, "a");
    // A node as a process of its own, over the same file and Redis, to be killed: no close handler runs,
    // and the stop its expiry would have sent never leaves it.
    const doomed = await start([process.execPath, "run", "src/index.ts"], {
      DATA_DIR: h.dataDir,
      REDIS_URL,
      REDIS_PREFIX: PREFIX,
      SECRET_KEY: TEST_SECRET,
      ENCRYPTION_KEY: TEST_SECRET,
      NODE_ENV: "test",
    });
    try {
      // Signed in there: its clock is the system's, and the harness's tokens are from its manual one.
      const res = await fetch(`${doomed.url}/api/auth/signin`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: quin.email, password: quin.password }),
      });
      const signedIn = (await res.json()) as { access_token: string; session_id: string };
      const typist = await connect(
        `${doomed.url.replace("http", "ws")}/ws/${quin.id}/${signedIn.session_id}`,
        ["parley.msgpack", `bearer.${signedIn.access_token}`],
      );
      open.push(typist);
      await typist.next((f) => f.type === "hello");
      typist.send({ type: "typing_start", conversation_id: id });
      await watcher.next((f) => f.type === "typing" && f.user_id === quin.id && f.state === "start");
      const typedAt = Date.now();
      doomed.proc.kill("SIGKILL");
      await doomed.proc.exited;
      const stop = await watcher.next(
        (f) => f.type === "typing" && f.user_id === quin.id && f.state === "stop",
        10_000,
      );
      expect(stop.conversation_id).toBe(id);
      expect(Date.now() - typedAt).toBeLessThan(9000);
    } finally {
      doomed.proc.kill("SIGKILL");
    }
  }, 30_000);

  it("sends a key exchange to a device on the other node", async () => {
    const [hal, ivy] = [await signup(h.app), await signup(h.app)];
    await group(h.app, hal, [ivy]);
    const from = await socket(hal, "a");
    const device = await socket(ivy, "b");
    from.send({
      type: "key_exchange",
      ref: 3,
      to_user_id: ivy.id,
      to_device_id: ivy.session_id,
      payload: "aGk",
    });
    await from.next((f) => f.type === "ok" && f.ref === 3);
    const got = await device.next((f) => f.type === "key_exchange");
    expect(got).toMatchObject({ from_user_id: hal.id, from_device_id: hal.session_id });
    // Sent as base64url text, relayed as the bytes it stands for ("hi"), bin to this msgpack socket.
    expect(new Uint8Array(got.payload)).toEqual(new TextEncoder().encode("hi"));
  });
});

describe("a node whose broker failed at boot", () => {
  it("joins the node-wide channel when it next tends, and then hears revocations", async () => {
    const bus = new MemoryBus();
    let refusals = 1;
    const flaky = new (class extends MemoryBroker {
      override async join(channels: readonly string[]) {
        if (refusals-- > 0) throw new Error("redis down");
        return super.join(channels);
      }
    })(bus);
    const deps = await createDeps(h.config, createLogger("silent"), { clock: h.clock, broker: flaky });
    try {
      await Bun.sleep(0);
      expect(flaky.joined.has(NODE_WIDE)).toBe(false);
      void deps.gateway.tend();
      await waitFor(() => (flaky.joined.has(NODE_WIDE) ? true : undefined));
      const revoked: string[][] = [];
      deps.sessions.onRevoke((ids) => revoked.push(ids));
      new MemoryBroker(bus).publish(NODE_WIDE, relayMessage({ kind: RELAY.revoke, session_ids: ["s-1"] }));
      await waitFor(() => (revoked.length > 0 ? true : undefined));
      expect(revoked).toEqual([["s-1"]]);
    } finally {
      await closeDeps(deps);
    }
  });
});

describe("a node that cannot reach Redis", () => {
  it("answers a socket upgrade 503 with Retry-After, not 500", async () => {
    // A node of the cluster (its REDIS_URL, so DATA_DIR lets it in) whose Redis cannot be reached.
    const broker = new RedisBroker("redis://127.0.0.1:1", createLogger("silent"), {
      prefix: PREFIX,
      joinTimeoutMs: 200,
    });
    const deps = await createDeps(h.config, createLogger("silent"), {
      clock: h.clock,
      broker,
    });
    const app = createApp(deps);
    app.listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const u = await signup(h.app);
      const res = await fetch(`http://127.0.0.1:${app.server?.port}/ws/${u.id}/${u.session_id}`, {
        headers: { ...UPGRADE_HEADERS, authorization: `Bearer ${u.token}` },
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("5");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unavailable");
    } finally {
      await app.stop(true);
      await closeDeps(deps);
    }
  });
});

describe("an announcement the other nodes cannot get", () => {
  it("is refused with 503 and Retry-After, and sent to nobody here either, so that sent again none has it twice", async () => {
    // A node whose broker drops what it publishes (Redis out of reach) but whose sockets still listen.
    let dropping = true;
    const broker = new (class extends MemoryBroker {
      override publish(channel: string, payload: Uint8Array) {
        return dropping ? false : super.publish(channel, payload);
      }
    })(new MemoryBus());
    const deps = await createDeps(h.config, createLogger("silent"), { clock: h.clock, broker });
    const app = createApp(deps);
    app.listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const admin = await signup(h.app);
      expect(await runCli(["admin", "grant", admin.username], h.config, () => {})).toBe(0);
      const listener = await connect(`ws://127.0.0.1:${app.server?.port}/ws/public/outage-news`, [
        "parley.json",
      ]);
      open.push(listener);
      listener.send({ type: "ping", ref: "p" });
      await listener.next((f) => f.type === "pong" && f.ref === "p");
      const announce = (text: string) =>
        call(app, "POST", "/api/announcements", {
          token: admin.token,
          body: { channel: "outage-news", text },
        });
      const refused = await announce("lost");
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe("unavailable");
      expect(refused.headers.get("retry-after")).toBe("5");
      dropping = false;
      expect((await announce("again")).status).toBe(201);
      expect(await listener.next((f) => f.type === "announcement")).toMatchObject({ text: "again" });
    } finally {
      await app.stop(true);
      await closeDeps(deps);
    }
  });
});
