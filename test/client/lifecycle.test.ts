// The SDK's own lifecycle: close() ends a connect() still under way and leaves nothing running (a
// script exits by itself).

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { type Server, startServer } from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

/** Runs the fixture in a process of its own: what it printed, and whether it exited by itself in time. */
async function closeWhileConnecting(when: "list" | "token" | "tick") {
  const script = join(import.meta.dir, "fixtures", "close-while-connecting.ts");
  const child = Bun.spawn([process.execPath, script, s.baseUrl, when], { stdout: "pipe", stderr: "pipe" });
  const killer = setTimeout(() => child.kill(), 4000);
  const code = await child.exited;
  clearTimeout(killer);
  return { code, out: (await new Response(child.stdout).text()).trim(), signal: child.signalCode };
}

describe("close() during connect()", () => {
  for (const when of ["list", "token", "tick"] as const) {
    it(`makes connect() fail with closed, and the process exits by itself (closed ${when === "list" ? "while listing conversations" : when === "token" ? "while getting the token" : "a tick later"})`, async () => {
      expect(await closeWhileConnecting(when)).toEqual({ code: 0, out: "rejected closed", signal: null });
    });
  }
});
