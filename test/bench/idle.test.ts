// The connections scenario's idle generator (bench/loadgen/idle.ts) against Socket.IO: it joins the default
// namespace before a socket counts and answers the server's pings, or Socket.IO would close every idle socket
// after one heartbeat; and a socket the server closes counts as dropped, not held.

import { afterEach, expect, it } from "bun:test";
import { join } from "node:path";
import { type Child, lines, spawn, stop } from "../../bench/lib/proc.ts";

const ROOT = join(import.meta.dir, "..", "..");
const children: Child[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stop(c)));
});

function start(cmd: string[], env: Record<string, string> = {}) {
  const child = spawn(cmd, env);
  children.push(child);
  return { child, out: lines(child) };
}

async function ask<T>(gen: ReturnType<typeof start>, op: Record<string, unknown>): Promise<T> {
  gen.child.stdin.write(`${JSON.stringify(op)}\n`);
  gen.child.stdin.flush();
  return JSON.parse(await gen.out.next(15_000, `idle ${String(op.op)}`)) as T;
}

it("holds Socket.IO sockets through several heartbeats: namespace joined, every ping answered", async () => {
  // A heartbeat every 100 ms with 100 ms to answer: an unanswered ping closes a socket within 0.2 s.
  const server = start(["node", join(ROOT, "bench/peers/socketio.mjs")], {
    REDIS_URL: "",
    PING_INTERVAL_MS: "100",
    PING_TIMEOUT_MS: "100",
  });
  const { port } = JSON.parse(await server.out.next(15_000, "socketio start")) as { port: number };
  const config = {
    port,
    conns: [{ path: "/socket.io/?EIO=4&transport=websocket&rooms=r1", port }],
    sources: ["127.0.0.2", "127.0.0.3"],
    concurrency: 10,
    expectHello: false,
    socketio: true,
  };
  const gen = start([process.execPath, "run", join(ROOT, "bench/loadgen/idle.ts"), JSON.stringify(config)]);
  const opened = await ask<{ ready: number; failed: number; errors: string[] }>(gen, {
    op: "open",
    count: 30,
    timeoutMs: 10_000,
  });
  expect(opened).toMatchObject({ ready: 30, failed: 0, errors: [] });
  await Bun.sleep(1_000);
  expect(await ask(gen, { op: "held" })).toEqual({ op: "held", held: 30, dropped: 0 });

  // A client that does not speak Engine.IO over the same server misses the heartbeat: Socket.IO closes
  // its sockets with a close frame, and they count as dropped, not held.
  const mute = start([
    process.execPath,
    "run",
    join(ROOT, "bench/loadgen/idle.ts"),
    JSON.stringify({ ...config, socketio: false }),
  ]);
  expect(await ask(mute, { op: "open", count: 10, timeoutMs: 10_000 })).toMatchObject({ ready: 10 });
  await Bun.sleep(1_000);
  expect(await ask(mute, { op: "held" })).toEqual({ op: "held", held: 0, dropped: 10 });
}, 30_000);

it("counts a socket that the server refuses as failed, with the reason", async () => {
  const server = start([process.execPath, "run", join(ROOT, "bench/peers/rest-bun.ts")], {
    USERNAMES: "a",
    PASSWORD: "a password",
    HASH_MEMORY_KIB: "1024",
    HASH_TIME: "1",
  });
  const { port } = JSON.parse(await server.out.next(15_000, "rest-bun start")) as { port: number };
  // A server that speaks no WebSocket at all: the handshake is answered with a 404.
  const config = {
    port,
    conns: [{ path: "/", port }],
    sources: ["127.0.0.2"],
    concurrency: 2,
    expectHello: false,
  };
  const gen = start([process.execPath, "run", join(ROOT, "bench/loadgen/idle.ts"), JSON.stringify(config)]);
  const opened = await ask<{ ready: number; failed: number; errors: string[] }>(gen, {
    op: "open",
    count: 3,
    timeoutMs: 5_000,
  });
  expect(opened.ready).toBe(0);
  expect(opened.failed).toBe(3);
  expect(opened.errors[0]).toContain("handshake refused: HTTP/1.1 404");
}, 30_000);
