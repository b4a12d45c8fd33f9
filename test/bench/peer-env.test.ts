// The peers listen on ports of their own whatever the bench's shell exports: a PORT set there for Parley
// must not reach them (bench/lib/proc.ts PEER_ENV), or at most one of them would start.

import { afterEach, describe, expect, it } from "bun:test";
import { startTarget, type Target } from "../../bench/lib/targets.ts";
import { startRestTarget } from "../../bench/scenarios/rest.ts";

const saved = process.env.PORT;
const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.stop()));
  if (saved === undefined) delete process.env.PORT;
  else process.env.PORT = saved;
});

describe("the peers under a PORT exported in the bench's shell", () => {
  it("start, each on a free port of its own", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      process.env.PORT = String(taken.port);
      const started: Target[] = [];
      for (const name of ["bare-bun", "node-ws", "socketio"] as const) {
        const target = await startTarget(name);
        running.push(target);
        started.push(target);
      }
      const ceiling = await startRestTarget("bare-bun", `p${Date.now()}`, { memoryKiB: 1024, time: 1 });
      running.push(ceiling);
      const ports = await Promise.all(
        started.map(async (t) => new URL((await t.prepare(1, [])).conns[0]?.url as string).port),
      );
      ports.push(new URL(ceiling.url).port);
      expect(new Set(ports).size).toBe(4);
      expect(ports).not.toContain(String(taken.port));
    } finally {
      taken.stop(true);
    }
  }, 30_000);
});
