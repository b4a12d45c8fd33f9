// The connections scenario past one process's open-file limit: each target as several processes on one port
// (REUSE_PORT), every one of them up before the scenario counts on it, and the kernel spreading sockets
// over them.

import { afterEach, expect, it } from "bun:test";
import { freePort, listensOn, tcpSockets } from "../../bench/lib/proc.ts";
import { benchRedisUrl } from "../../bench/lib/redis.ts";
import { startTarget, type Target, type TargetName } from "../../bench/lib/targets.ts";

let target: Target | undefined;
afterEach(async () => {
  await target?.stop();
  target = undefined;
});

it("tells which process listens on a port", () => {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    expect(listensOn(process.pid, server.port)).toBe(true);
    expect(listensOn(process.pid, freePort())).toBe(false);
    expect(listensOn(1, server.port)).toBe(false);
  } finally {
    server.stop(true);
  }
});

it.each(["parley", "bare-bun"] as TargetName[])(
  "starts %s as two processes on one port, both listening, both taking sockets",
  async (name) => {
    const port = freePort();
    const prefix = `parley-test-shared-${name}-${Date.now()}`;
    target = await startTarget(name, { nodes: 2, redisUrl: benchRedisUrl(), prefix, port });
    expect(target.pids).toHaveLength(2);
    for (const pid of target.pids) expect(listensOn(pid, port)).toBe(true);
    const prepared = await target.prepare(name === "parley" ? 1 : 0, []);
    const url = prepared.conns[0]?.url ?? `ws://127.0.0.1:${port}/?rooms=`;
    expect(new URL(url).port).toBe(String(port));
    // 40 sockets at once: all on one process would be chance of 2^-39.
    const sockets = Array.from({ length: 40 }, () => new WebSocket(url, prepared.conns[0]?.protocols ?? []));
    await Promise.all(sockets.map((ws) => new Promise((resolve) => ws.addEventListener("open", resolve))));
    const counts = target.pids.map((pid) => tcpSockets(pid, port, "established"));
    for (const ws of sockets) ws.close();
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBeGreaterThan(0);
    // Also counted: a keep-alive HTTP connection left by prepare's requests to Parley.
    expect((counts[0] ?? 0) + (counts[1] ?? 0)).toBeGreaterThanOrEqual(40);
  },
  30_000,
);

it.each(["node-ws", "socketio"] as TargetName[])(
  "starts %s as two processes on ports of their own (Node.js 20 shares none), a user on each",
  async (name) => {
    const prefix = `parley-test-own-ports-${name}-${Date.now()}`;
    target = await startTarget(name, { nodes: 2, redisUrl: benchRedisUrl(), prefix, port: freePort() });
    expect(target.pids).toHaveLength(2);
    const prepared = await target.prepare(2, [], (u) => u % 2);
    const ports = prepared.conns.map((c) => Number(new URL(c.url).port));
    expect(new Set(ports).size).toBe(2);
    target.pids.forEach((pid, i) => {
      expect(listensOn(pid, ports[i] as number)).toBe(true);
    });
  },
  30_000,
);
