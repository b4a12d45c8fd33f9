// The servers a scenario measures, each started as its own process on a loopback port: Parley (full path),
// the bare Bun ceiling, Node.js + ws and Socket.IO. `prepare` turns "users and the rooms they are in" into
// connection specs the load generator opens with one raw client (Socket.IO needs its own client). Given a
// cluster (cross-node), a target is several such processes joined through Redis, and `prepare` says which
// node each user connects to.

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BEARER_PREFIX, SUBPROTOCOL_MSGPACKR } from "../../src/realtime/frames.ts";
import { type ParleyServer, startParleyServer } from "./parley-server.ts";
import { type Child, lines, onStop, PEER_ENV, pool, spawn, stop } from "./proc.ts";
import { seedAccounts } from "./seed.ts";
import { pickTargets, type TargetName } from "./target-names.ts";

export { pickTargets, type RestTargetName, restTargets, type TargetName } from "./target-names.ts";

/** Every target, or the ones BENCH_TARGETS names (comma-separated), for quick comparisons while profiling. */
export const TARGETS: readonly TargetName[] = pickTargets(process.env.BENCH_TARGETS);

/** How the load generator reaches one user: a raw WebSocket (msgpack) or a Socket.IO client. */
export interface ConnSpec {
  url: string;
  protocols?: string[];
  /** Socket.IO handshake query. */
  query?: Record<string, string>;
}

export interface Prepared {
  mode: "raw" | "socketio";
  conns: ConnSpec[];
  /** Room ids, index for index with the `rooms` given to prepare. */
  roomIds: string[];
  /** Parley greets with `hello`: the generator waits for it before a socket counts as ready. */
  expectHello: boolean;
}

/** Cross-node: a target as `nodes` server processes joined through one Redis. */
export interface Cluster {
  nodes: number;
  redisUrl: string;
  /** The peers' Redis channel prefix: unique per run and target, so no two targets' channels ever meet. */
  prefix: string;
  /**
   * One port every node listens on (REUSE_PORT: the kernel spreads new connections over them), as processes
   * of one host would be deployed; by default each node has a port of its own.
   */
  port?: number;
}

export interface Target {
  name: TargetName;
  /** The server process (node A's in a cluster). */
  pid: number;
  /** Every node's server process, node A first. */
  pids: number[];
  /** The last warnings and errors the servers logged (Parley's), for a result's notes. */
  problems(): string[];
  /** Node A's /metrics text (Parley's; the peers have none). */
  scrapeMetrics?(): Promise<string>;
  /**
   * `users` users; rooms[i] lists the user indexes in room i (the first one creates it). `nodeOf` is the
   * node each user connects to (0 is node A, the only one without a cluster).
   */
  prepare(users: number, rooms: number[][], nodeOf?: (user: number) => number): Promise<Prepared>;
  stop(): Promise<void>;
}

const ROOT = join(import.meta.dir, "..", "..");

export async function startTarget(name: TargetName, cluster?: Cluster): Promise<Target> {
  return name === "parley" ? startParley(cluster) : startPeer(name, cluster);
}

/** The node a user connects to, checked against the nodes there are. */
function pick<T>(nodes: T[], nodeOf: (user: number) => number, user: number): T {
  const node = nodes[nodeOf(user)];
  if (node === undefined) throw new Error(`user ${user}: no node ${nodeOf(user)} (${nodes.length} running)`);
  return node;
}

async function startPeer(name: Exclude<TargetName, "parley">, cluster?: Cluster): Promise<Target> {
  const cmd =
    name === "bare-bun"
      ? [process.execPath, "run", join(ROOT, "bench/peers/bare-bun.ts")]
      : ["node", join(ROOT, `bench/peers/${name}.mjs`)];
  // Alone, a peer is one node even when the bench's own environment has a REDIS_URL.
  const env: Record<string, string> = cluster
    ? { ...PEER_ENV, REDIS_URL: cluster.redisUrl, REDIS_PREFIX: cluster.prefix }
    : { ...PEER_ENV, REDIS_URL: "" };
  // Node.js 20 cannot share a port between processes (SO_REUSEPORT came in Node 22.12): its peers' nodes
  // listen on ports of their own, and the clients spread over them as a load balancer in front would.
  if (cluster?.port !== undefined && name === "bare-bun")
    Object.assign(env, { PORT: String(cluster.port), REUSE_PORT: "true" });
  const children: Child[] = [];
  try {
    const bases: string[] = [];
    for (let n = 0; n < (cluster?.nodes ?? 1); n++) {
      const child = spawn(cmd, { NODE_ENV: "production", ...env });
      children.push(child);
      const { port } = JSON.parse(await lines(child).next(15_000, `${name} start`)) as { port: number };
      bases.push(name === "socketio" ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/`);
    }
    return {
      name,
      pid: (children[0] as Child).pid,
      pids: children.map((c) => c.pid),
      problems: () => [],
      async prepare(users, rooms, nodeOf = () => 0) {
        const roomIds = rooms.map((_, i) => `r${i}`);
        const of: string[][] = Array.from({ length: users }, () => []);
        rooms.forEach((members, i) => {
          for (const u of members) of[u]?.push(roomIds[i] as string);
        });
        const conns = of.map((r, u) => {
          const base = pick(bases, nodeOf, u);
          return name === "socketio"
            ? { url: base, query: { rooms: r.join(",") } }
            : { url: `${base}?rooms=${r.join(",")}` };
        });
        return { mode: name === "socketio" ? "socketio" : "raw", conns, roomIds, expectHello: false };
      },
      stop: async () => {
        await Promise.all(children.map((c) => stop(c)));
      },
    };
  } catch (err) {
    await Promise.all(children.map((c) => stop(c)));
    throw err;
  }
}

/**
 * Parley with a temp SQLite DATA_DIR and rate limits far above the offered load, so they never bind. In a
 * cluster every node shares that DATA_DIR (WAL, busy_timeout), its secrets (a token is valid on any node)
 * and REDIS_URL, and its Redis keys and channels carry the run's prefix (REDIS_PREFIX) as the peers' do.
 */
async function startParley(cluster?: Cluster): Promise<Target> {
  // Warnings only: the measured path logs nothing per frame either way, and setup stays quiet.
  // Alone, one node even when the bench's own environment has a REDIS_URL.
  // METRICS_TOKEN: a phase reads the server's own ack times over its measured window (server-metrics.ts).
  const metricsToken = randomBytes(24).toString("hex");
  const env: Record<string, string> = {
    LOG_LEVEL: "warn",
    REDIS_URL: cluster?.redisUrl ?? "",
    METRICS_TOKEN: metricsToken,
  };
  const dataDir = cluster ? mkdtempSync(join(tmpdir(), "parley-bench-")) : undefined;
  if (cluster) {
    env.REDIS_PREFIX = `${cluster.prefix}:`;
    env.SECRET_KEY = randomBytes(48).toString("base64");
    env.ENCRYPTION_KEY = randomBytes(48).toString("base64");
  }
  const servers: ParleyServer[] = [];
  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    off();
  };
  // The nodes' shared DATA_DIR is this function's to remove, on a signal too (each node stops itself).
  const off = dataDir ? onStop(stopAll) : () => {};
  try {
    // One after the other: the first node creates the database and runs its migrations.
    for (let n = 0; n < (cluster?.nodes ?? 1); n++)
      servers.push(await startParleyServer({ env, dataDir, port: cluster?.port }));
  } catch (err) {
    await stopAll();
    throw err;
  }
  const server = servers[0] as ParleyServer;
  return {
    name: "parley",
    pid: server.pid,
    pids: servers.map((s) => s.pid),
    problems: () => servers.flatMap((s) => s.problems()),
    async scrapeMetrics() {
      const res = await fetch(`${server.url}/metrics`, {
        headers: { authorization: `Bearer ${metricsToken}` },
        signal: AbortSignal.timeout(5_000),
      });
      if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
      return res.text();
    },
    async prepare(users, rooms, nodeOf = () => 0) {
      // Accounts are written straight to the database (bench/lib/seed.ts): signup's argon2id per user
      // would be most of a full run, and it is measured in the rest scenario.
      const accounts = await seedAccounts(server.env, users, randomBytes(4).toString("hex"));
      const roomIds = await pool(rooms, 8, async (members, i) => {
        const [owner, ...rest] = members;
        const acct = accounts[owner as number];
        if (!acct) throw new Error(`room ${i} has no members`);
        const body =
          members.length === 2
            ? { conversation_type: "dm", participant_ids: [accounts[rest[0] as number]?.user.id] }
            : {
                conversation_type: "group",
                name: `bench ${i}`,
                participant_ids: rest.map((u) => accounts[u]?.user.id),
              };
        const conv = await post(`${server.url}/api/conversations`, body, acct.access_token);
        return conv.id as string;
      });
      const conns = accounts.map((a, u) => ({
        url: `${pick(servers, nodeOf, u).wsUrl}/ws/${a.user.id}/${a.session_id}`,
        // What Parley's SDK offers first: MessagePack records (README, "Realtime protocol").
        protocols: [SUBPROTOCOL_MSGPACKR, `${BEARER_PREFIX}${a.access_token}`],
      }));
      return { mode: "raw", conns, roomIds, expectHello: true };
    },
    stop: stopAll,
  };
}

// biome-ignore lint/suspicious/noExplicitAny: REST bodies are checked by the server's own tests; here we read two fields.
async function post(url: string, body: unknown, token?: string): Promise<any> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${new URL(url).pathname}: ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}
