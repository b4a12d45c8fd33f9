// The Redis broker against the real Redis: the shared contract, deployments kept apart by their prefix, a
// node that died without closing, and a Redis that cannot be reached.

import { afterAll, describe, expect, it } from "bun:test";
import { Redis } from "ioredis";
import { RedisBroker } from "../../src/broker/redis.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { harness, rejection, waitFor } from "../helpers.ts";
import { brokerContract } from "./contract.ts";
import { redisProxy } from "./redis-proxy.ts";

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
/** Every key and channel of this run starts with RUN, so runs never meet and cleanup finds exactly them. */
const RUN = `parley-test-${crypto.randomUUID()}:`;
const silent = createLogger("silent");
const admin = new Redis(REDIS_URL);

/** Waits until a cut reached both of the node's connections: one may hear of it before the other. */
async function cutReached(node: RedisBroker) {
  const { pub, sub } = node as unknown as { pub: Redis; sub: Redis };
  await waitFor(() => (pub.status === "ready" || sub.status === "ready" ? undefined : true));
}

/** Three nodes of one deployment: one to die, two to sweep it. */
const threeNodes = (prefix: string) =>
  [0, 1, 2].map(() => new RedisBroker(REDIS_URL, silent, { prefix })) as [
    RedisBroker,
    RedisBroker,
    RedisBroker,
  ];

afterAll(async () => {
  const keys = await admin.keys(`${RUN}*`);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
});

brokerContract("redis", (n) => {
  const prefix = `${RUN}${crypto.randomUUID()}:`;
  return Array.from({ length: n }, () => new RedisBroker(REDIS_URL, silent, { prefix }));
});

describe("REDIS_PREFIX", () => {
  it("starts every key and channel of a server's broker", async () => {
    const h = await harness({ REDIS_URL, REDIS_PREFIX: `${RUN}tenant:` });
    try {
      expect(await h.deps.broker.countSockets("u-1", 1)).toBe(1);
      expect(await admin.exists(`${RUN}tenant:node:${h.deps.broker.nodeId}`)).toBe(1);
      expect(await admin.hget(`${RUN}tenant:sockets:u-1`, h.deps.broker.nodeId)).toBe("1");
    } finally {
      await h.close();
    }
  });
});

describe("RedisBroker", () => {
  it("keeps deployments with different prefixes apart", async () => {
    const mine = new RedisBroker(REDIS_URL, silent, { prefix: `${RUN}one:` });
    const theirs = new RedisBroker(REDIS_URL, silent, { prefix: `${RUN}two:` });
    const peer = new RedisBroker(REDIS_URL, silent, { prefix: `${RUN}one:` });
    try {
      const heardTheirs: Uint8Array[] = [];
      const heardPeer: Uint8Array[] = [];
      theirs.onMessage((_, p) => heardTheirs.push(p));
      peer.onMessage((_, p) => heardPeer.push(p));
      await Promise.all([theirs.join(["c:shared"]), peer.join(["c:shared"])]);
      mine.publish("c:shared", new Uint8Array([1]));
      await waitFor(() => (heardPeer.length > 0 ? true : undefined));
      expect(heardTheirs).toEqual([]);
      expect(await mine.countSockets("u-1", 1)).toBe(1);
      expect(await theirs.countSockets("u-1", 1)).toBe(1);
    } finally {
      await Promise.all([mine.close(), theirs.close(), peer.close()]);
    }
  });

  it("keeps deployments on different databases of one Redis apart, though Redis's channels know no database", async () => {
    const prefix = `${RUN}databases:`;
    const at = (db: number) => {
      const url = new URL(REDIS_URL);
      url.pathname = `/${db}`;
      return url.toString();
    };
    const [mine, peer, theirs, theirPeer] = [1, 1, 2, 2].map(
      (db) => new RedisBroker(at(db), silent, { prefix }),
    ) as [RedisBroker, RedisBroker, RedisBroker, RedisBroker];
    try {
      const heard = { peer: [] as number[], theirs: [] as number[] };
      peer.onMessage((_, p) => heard.peer.push(p[0] ?? -1));
      theirs.onMessage((_, p) => heard.theirs.push(p[0] ?? -1));
      await Promise.all([peer.join(["p:news"]), theirs.join(["p:news"])]);
      mine.publish("p:news", new Uint8Array([1]));
      await waitFor(() => (heard.peer.length > 0 ? true : undefined));
      // Published once the first was delivered: a subscriber that was sent the first has it before this.
      theirPeer.publish("p:news", new Uint8Array([2]));
      await waitFor(() => (heard.theirs.length > 0 ? true : undefined));
      expect(heard).toEqual({ peer: [1], theirs: [2] });
    } finally {
      await Promise.all([mine.close(), peer.close(), theirs.close(), theirPeer.close()]);
      for (const db of [1, 2]) {
        const other = new Redis(at(db));
        const keys = await other.keys(`${prefix}*`);
        if (keys.length > 0) await other.del(...keys);
        await other.quit();
      }
    }
  });

  it("stops counting a node's sockets once its heartbeat is gone (a node that died)", async () => {
    const prefix = `${RUN}died:`;
    const dead = new RedisBroker(REDIS_URL, silent, { prefix });
    const alive = new RedisBroker(REDIS_URL, silent, { prefix });
    try {
      await dead.countSockets("u-1", 1);
      expect(await alive.countSockets("u-1", 1)).toBe(2);
      // Killed: no close, so its field stays; the heartbeat key expires as it would.
      await admin.del(`${prefix}node:${dead.nodeId}`);
      expect(await alive.countSockets("u-1", -1)).toBe(0);
      expect(await admin.hkeys(`${prefix}sockets:u-1`)).toEqual([]);
    } finally {
      await Promise.all([dead.close(), alive.close()]);
    }
  });

  it("hands the users a dead node held, and only those left with no socket, to one sweeper once", async () => {
    const prefix = `${RUN}sweep:`;
    const [dead, a, b] = threeNodes(prefix);
    try {
      await dead.countSockets("u-only-there", 1);
      await dead.countSockets("u-only-there", 1);
      await dead.countSockets("u-both", 1);
      await a.countSockets("u-both", 1);
      await dead.countSockets("u-left", 1);
      await dead.countSockets("u-left", -1);
      // Written offline by the dead node itself, while it lived.
      dead.offlineWritten(["u-left"]);
      await waitFor(async () =>
        (await admin.scard(`${prefix}owed:${dead.nodeId}`)) === 0 ? true : undefined,
      );
      expect(await a.sweepDeadNodes()).toEqual([]);
      // Killed: no close; its heartbeat expires as it would.
      await admin.del(`${prefix}node:${dead.nodeId}`);
      const [first, second] = await Promise.all([a.sweepDeadNodes(), b.sweepDeadNodes()]);
      expect([...first, ...second]).toEqual(["u-only-there"]);
      expect(await a.sweepDeadNodes()).toEqual([]);
      expect(await a.countSockets("u-both", 0)).toBe(1);
      expect(await admin.exists(`${prefix}node-users:${dead.nodeId}`)).toBe(0);
      expect(await admin.sismember(`${prefix}nodes`, dead.nodeId)).toBe(0);
      // It was only stalled: its next heartbeat finds its key gone and puts its counts back.
      await dead.beat();
      expect(await a.countSockets("u-only-there", 0)).toBe(2);
      expect(await a.countSockets("u-both", 0)).toBe(2);
    } finally {
      await Promise.all([dead.close(), a.close(), b.close()]);
    }
  });

  it("hands on the offline writes a dead node was handed and did not say it wrote, to one sweeper once", async () => {
    const prefix = `${RUN}owed:`;
    const [dead, a, b] = threeNodes(prefix);
    const owed = (node: RedisBroker) => admin.smembers(`${prefix}owed:${node.nodeId}`);
    try {
      // Each user's last socket closes on the dead node, which is handed the offline write.
      for (const user of ["u-unwritten", "u-written", "u-back", "u-back-and-gone"]) {
        await dead.countSockets(user, 1);
        expect(await dead.countSockets(user, -1)).toBe(0);
      }
      // It wrote one of them; two came back on node A (whose close of one hands its write to A).
      dead.offlineWritten(["u-written"]);
      await a.countSockets("u-back", 1);
      await a.countSockets("u-back-and-gone", 1);
      await a.countSockets("u-back-and-gone", -1);
      await waitFor(async () => ((await owed(dead)).includes("u-written") ? undefined : true));
      expect((await owed(dead)).sort()).toEqual(["u-unwritten"]);
      expect(await owed(a)).toEqual(["u-back-and-gone"]);
      // Killed before writing the first: no close; its heartbeat expires as it would.
      await admin.del(`${prefix}node:${dead.nodeId}`);
      const [first, second] = await Promise.all([a.sweepDeadNodes(), b.sweepDeadNodes()]);
      expect([...first, ...second]).toEqual(["u-unwritten"]);
      expect(await admin.exists(`${prefix}owed:${dead.nodeId}`)).toBe(0);
      // Handed to its sweeper like any claim: listed as its until it says it wrote it.
      const sweeper = first.length > 0 ? a : b;
      expect(await owed(sweeper)).toContain("u-unwritten");
      sweeper.offlineWritten(["u-unwritten", "u-back-and-gone"]);
      await waitFor(async () => ((await owed(sweeper)).includes("u-unwritten") ? undefined : true));
      expect(await owed(sweeper)).toEqual([]);
      // A node that closes owing a write stays listed for the sweep; one that owes none leaves.
      const owing = new RedisBroker(REDIS_URL, silent, { prefix });
      await owing.countSockets("u-owing", 1);
      await owing.countSockets("u-owing", -1);
      await owing.close();
      expect(await admin.sismember(`${prefix}nodes`, owing.nodeId)).toBe(1);
      expect(await a.sweepDeadNodes()).toEqual(["u-owing"]);
      expect(await admin.sismember(`${prefix}nodes`, owing.nodeId)).toBe(0);
    } finally {
      await Promise.all([dead.close(), a.close(), b.close()]);
    }
  });

  it("leaves the list of nodes when it closes holding no user, and stays for the sweep when it holds some", async () => {
    const prefix = `${RUN}leave:`;
    const done = new RedisBroker(REDIS_URL, silent, { prefix });
    const holding = new RedisBroker(REDIS_URL, silent, { prefix });
    await done.countSockets("u-1", 1);
    await done.countSockets("u-1", -1);
    // Written offline: said as it closes, before it leaves.
    done.offlineWritten(["u-1"]);
    await holding.countSockets("u-2", 1);
    expect(await admin.smembers(`${prefix}nodes`)).toContain(done.nodeId);
    await Promise.all([done.close(), holding.close()]);
    expect(await admin.sismember(`${prefix}nodes`, done.nodeId)).toBe(0);
    // Its user is the next sweeper's to write offline.
    expect(await admin.sismember(`${prefix}nodes`, holding.nodeId)).toBe(1);
    expect(await admin.exists(`${prefix}node:${holding.nodeId}`)).toBe(0);
    const sweeper = new RedisBroker(REDIS_URL, silent, { prefix });
    try {
      expect(await sweeper.sweepDeadNodes()).toEqual(["u-2"]);
      expect(await admin.exists(`${prefix}nodes`)).toBe(0);
    } finally {
      await sweeper.close();
    }
  });

  it("puts its socket counts back once it reconnects to a Redis that lost them (a restart)", async () => {
    const prefix = `${RUN}restart:`;
    const node = new RedisBroker(REDIS_URL, silent, { prefix });
    const other = new RedisBroker(REDIS_URL, silent, { prefix });
    try {
      await node.countSockets("u-1", 1);
      await node.countSockets("u-1", 1);
      await node.countSockets("u-2", 1);
      await node.countSockets("u-2", -1);
      // What a restart of Redis loses, then the connection dropping as it would.
      await admin.del(`${prefix}sockets:u-1`, `${prefix}node:${node.nodeId}`);
      const clients = String(await admin.client("LIST"));
      const id = clients
        .split("\n")
        .find((line) => line.includes(`name=parley-broker-${node.nodeId}`))
        ?.match(/id=(\d+)/)?.[1];
      expect(id).toBeDefined();
      await admin.client("KILL", "ID", id as string);
      await waitFor(async () =>
        (await admin.hget(`${prefix}sockets:u-1`, node.nodeId)) === "2" ? true : undefined,
      );
      expect(await admin.exists(`${prefix}node:${node.nodeId}`)).toBe(1);
      expect(await admin.exists(`${prefix}sockets:u-2`)).toBe(0);
      expect(await other.countSockets("u-1", 1)).toBe(3);
    } finally {
      await Promise.all([node.close(), other.close()]);
    }
  });

  it("fails a join when Redis cannot be reached, and a later join asks again", async () => {
    const broker = new RedisBroker("redis://127.0.0.1:1", silent, { prefix: RUN, joinTimeoutMs: 200 });
    try {
      const err = await rejection(broker.join(["c:1"]), Error);
      expect(err.message).toContain("timed out");
      expect(broker.joined.has("c:1")).toBe(false);
      expect((await rejection(broker.ping(), Error)).message).toBeTruthy();
      // Publishing to a Redis that is down neither throws nor waits.
      broker.publish("c:1", new Uint8Array([1]));
    } finally {
      await broker.close();
    }
  });

  it("fails a count and a ping at once while its Redis connection is down, not after ioredis gives up on them", async () => {
    const prefix = `${RUN}down:`;
    const proxy = redisProxy(REDIS_URL);
    const node = new RedisBroker(proxy.url, silent, { prefix, settleMs: 50 });
    let reconnected = false;
    node.onReconnect(() => {
      reconnected = true;
    });
    try {
      expect(await node.countSockets("u-1", 1)).toBe(1);
      proxy.cut();
      await cutReached(node);
      let outcome = "waiting";
      node.countSockets("u-1", 1).then(
        () => (outcome = "counted"),
        (err: Error) => (outcome = err.message),
      );
      let pinged = "waiting";
      node.ping().then(
        () => (pinged = "ok"),
        (err: Error) => (pinged = err.message),
      );
      // Queued, the count (or a readiness check's PING) would wait for a reconnect attempt (50 ms and more
      // away) before failing.
      await Bun.sleep(0);
      expect(outcome).toBe("broker redis: not connected");
      expect(pinged).toBe("broker redis: not connected");
      // A publish is dropped (said so), not queued for the reconnect.
      expect(node.publish("c:down", new Uint8Array([1]))).toBe(false);
      // The tally kept that socket: Redis is told it once it is back.
      proxy.restore();
      await waitFor(() => (reconnected ? true : undefined), 5000);
      expect(await admin.hget(`${prefix}sockets:u-1`, node.nodeId)).toBe("2");
    } finally {
      await node.close();
      proxy.stop();
    }
  });

  it("tries a lost Redis again at most 2 s apart, so the others are back within its 3 s settle window", async () => {
    const node = new RedisBroker(REDIS_URL, silent, { prefix: `${RUN}retry:` });
    try {
      const { pub, sub } = node as unknown as { pub: Redis; sub: Redis };
      for (const client of [pub, sub]) {
        const delays = Array.from({ length: 40 }, (_, i) => client.options.retryStrategy?.(i + 1));
        for (const delay of delays) {
          expect(delay).toBeGreaterThan(0);
          expect(delay).toBeLessThanOrEqual(2000);
        }
        // The first tries come quickly: a blip is over in a fraction of a second.
        expect(delays[0]).toBeLessThan(300);
      }
    } finally {
      await node.close();
    }
  });

  it("closes at once while its Redis connection is down, not after ioredis gives up on its leave", async () => {
    const proxy = redisProxy(REDIS_URL);
    const node = new RedisBroker(proxy.url, silent, { prefix: `${RUN}close-down:` });
    try {
      await node.ping();
      proxy.cut();
      await cutReached(node);
      // Queued, the leave would wait for a reconnect attempt or two (50 ms and more away, then doubling).
      let closed = false;
      const closing = node.close().then(() => {
        closed = true;
      });
      await Bun.sleep(0);
      const atOnce = closed;
      await closing;
      expect(atOnce).toBe(true);
    } finally {
      proxy.stop();
    }
  });

  it("rewrites its whole share once it has Redis back after a cut: no field is left for a user it let go of meanwhile", async () => {
    const prefix = `${RUN}cut:`;
    const proxy = redisProxy(REDIS_URL);
    const node = new RedisBroker(proxy.url, silent, { prefix, settleMs: 100 });
    const other = new RedisBroker(REDIS_URL, silent, { prefix });
    const events: string[] = [];
    node.onReconnect(() => events.push("reconnect"));
    node.onSettled(() => events.push("settled"));
    try {
      for (const u of ["u-gone", "u-gone", "u-kept", "u-kept"]) await node.countSockets(u, 1);
      expect(await other.countSockets("u-gone", 1)).toBe(3);
      proxy.cut();
      await waitFor(() => (node.settled ? undefined : true));
      // Closed while Redis cannot hear of it.
      await Promise.all(["u-gone", "u-gone", "u-kept"].map((u) => node.countSockets(u, -1).catch(() => {})));
      expect(await admin.hget(`${prefix}sockets:u-gone`, node.nodeId)).toBe("2");
      proxy.restore();
      await waitFor(() => (events.includes("reconnect") ? true : undefined), 5000);
      expect(await admin.hget(`${prefix}sockets:u-gone`, node.nodeId)).toBeNull();
      expect(await admin.sismember(`${prefix}node-users:${node.nodeId}`, "u-gone")).toBe(0);
      expect(await admin.hget(`${prefix}sockets:u-kept`, node.nodeId)).toBe("1");
      expect(node.settled).toBe(false);
      await waitFor(() => (node.settled ? true : undefined));
      expect(events).toEqual(["reconnect", "settled"]);
      // Counts are right everywhere: u-gone only on the other node.
      expect(await other.countSockets("u-gone", 0)).toBe(1);
    } finally {
      await Promise.all([node.close(), other.close()]);
      proxy.stop();
    }
  });

  it("hands a user let go of while counts were not trusted to one settler, once, and only with no socket left", async () => {
    const prefix = `${RUN}settle:`;
    const [a, b] = [0, 1].map(() => new RedisBroker(REDIS_URL, silent, { prefix })) as [
      RedisBroker,
      RedisBroker,
    ];
    try {
      await a.countSockets("u-held", 1);
      const [first, second] = await Promise.all([
        a.settle(["u-free", "u-held"]),
        b.settle(["u-free", "u-held"]),
      ]);
      expect([...first, ...second]).toEqual(["u-free"]);
      // One node writes u-free offline: another's settle does not repeat it, until u-free has had a socket
      // again. The same node asking again (its reply lost) is handed its claim again.
      const [winner, loser] = first.length > 0 ? [a, b] : [b, a];
      expect(await loser.settle(["u-free"])).toEqual([]);
      expect(await winner.settle(["u-free"])).toEqual(["u-free"]);
      await b.countSockets("u-free", 1);
      await b.countSockets("u-free", -1);
      expect(await a.settle(["u-free"])).toEqual([]);
      // B's last close claimed the write: should B not have had the count's reply, its settle gets it.
      expect(await b.settle(["u-free"])).toEqual(["u-free"]);
      await b.countSockets("u-free", 1);
      expect(await b.settle(["u-free"])).toEqual([]);
      expect(await a.settle(["u-free"])).toEqual([]);
      await admin.hdel(`${prefix}sockets:u-free`, b.nodeId);
      expect(await a.settle(["u-free"])).toEqual(["u-free"]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("does not stay subscribed to a channel whose join timed out while Redis was out of reach", async () => {
    const prefix = `${RUN}leak:`;
    const proxy = redisProxy(REDIS_URL);
    const node = new RedisBroker(proxy.url, silent, { prefix, joinTimeoutMs: 100, settleMs: 50 });
    let reconnected = false;
    node.onReconnect(() => {
      reconnected = true;
    });
    try {
      await node.ping();
      proxy.cut();
      await rejection(node.join(["c:late"]), Error);
      expect(node.joined.has("c:late")).toBe(false);
      proxy.restore();
      await waitFor(() => (reconnected ? true : undefined), 5000);
      await node.ping();
      await waitFor(async () => {
        const [, subscribers] = (await admin.pubsub("NUMSUB", `${prefix}c:late`)) as [string, number];
        return subscribers === 0 ? true : undefined;
      });
    } finally {
      await node.close();
      proxy.stop();
    }
  });
});
