// The servers a scenario measures, each started as its own process on a loopback port: Parley (full path),
// the bare Bun ceiling, Node.js + ws and Socket.IO. `prepare` turns "users and the rooms they are in" into
// connection specs the load generator opens with one raw client (Socket.IO needs its own client).

import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { startParleyServer } from "./parley-server.ts";
import { lines, pool, spawn, stop } from "./proc.ts";
import { seedAccounts } from "./seed.ts";

export type TargetName = "parley" | "bare-bun" | "node-ws" | "socketio";
const ALL_TARGETS: readonly TargetName[] = ["parley", "bare-bun", "node-ws", "socketio"];
/** Every target, or the ones BENCH_TARGETS names (comma-separated), for quick comparisons while profiling. */
export const TARGETS: readonly TargetName[] = pickTargets(process.env.BENCH_TARGETS);

export function pickTargets(list: string | undefined): readonly TargetName[] {
  if (!list) return ALL_TARGETS;
  const names = list.split(",").map((n) => n.trim());
  const unknown = names.filter((n) => !ALL_TARGETS.includes(n as TargetName));
  if (unknown.length) throw new Error(`BENCH_TARGETS: unknown target(s) ${unknown.join(", ")}`);
  return ALL_TARGETS.filter((t) => names.includes(t));
}

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

export interface Target {
  name: TargetName;
  pid: number;
  /** `users` users; rooms[i] lists the user indexes in room i (the first one creates it). */
  prepare(users: number, rooms: number[][]): Promise<Prepared>;
  stop(): Promise<void>;
}

const ROOT = join(import.meta.dir, "..", "..");

export async function startTarget(name: TargetName): Promise<Target> {
  return name === "parley" ? startParley() : startPeer(name);
}

async function startPeer(name: Exclude<TargetName, "parley">): Promise<Target> {
  const cmd =
    name === "bare-bun"
      ? [process.execPath, "run", join(ROOT, "bench/peers/bare-bun.ts")]
      : ["node", join(ROOT, `bench/peers/${name}.mjs`)];
  const child = spawn(cmd, { NODE_ENV: "production" });
  try {
    const { port } = JSON.parse(await lines(child).next(15_000, `${name} start`)) as { port: number };
    const base = name === "socketio" ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/`;
    return {
      name,
      pid: child.pid,
      async prepare(users, rooms) {
        const roomIds = rooms.map((_, i) => `r${i}`);
        const of: string[][] = Array.from({ length: users }, () => []);
        rooms.forEach((members, i) => {
          for (const u of members) of[u]?.push(roomIds[i] as string);
        });
        const conns = of.map((r) =>
          name === "socketio"
            ? { url: base, query: { rooms: r.join(",") } }
            : { url: `${base}?rooms=${r.join(",")}` },
        );
        return { mode: name === "socketio" ? "socketio" : "raw", conns, roomIds, expectHello: false };
      },
      stop: () => stop(child),
    };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

/** Parley with a temp SQLite DATA_DIR and rate limits far above the offered load, so they never bind. */
async function startParley(): Promise<Target> {
  // Warnings only: the measured path logs nothing per frame either way, and setup stays quiet.
  const server = await startParleyServer({ env: { LOG_LEVEL: "warn" } });
  return {
    name: "parley",
    pid: server.pid,
    async prepare(users, rooms) {
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
      const conns = accounts.map((a) => ({
        url: `${server.wsUrl}/ws/${a.user.id}/${a.session_id}`,
        protocols: ["parley.msgpack", `bearer.${a.access_token}`],
      }));
      return { mode: "raw", conns, roomIds, expectHello: true };
    },
    stop: server.stop,
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
