// The SDK's own lifecycle: close() ends a connect() still under way and leaves nothing running (a
// script exits by itself), and a link the heartbeat finds dead is left at once for a new connection.

import { afterAll, beforeAll, describe, expect, it, setSystemTime } from "bun:test";
import { join } from "node:path";
import { RealtimeConnection } from "../../src/client/index.ts";
import { fakeServer, record, type Server, startServer, tcpProxy } from "./helpers.ts";

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

describe("heartbeat", () => {
  it("leaves a link it hears nothing on at once and reconnects, without waiting for the socket's close", async () => {
    const fake = fakeServer({ hello: { heartbeat_interval: 1 } });
    const proxy = tcpProxy(Number(new URL(fake.baseUrl).port));
    const rt = new RealtimeConnection({
      baseUrl: proxy.baseUrl,
      userId: "u",
      sessionId: "d",
      token: () => "t",
      encoding: "json",
      backoff: { minMs: 5, maxMs: 20 },
    });
    try {
      const [closes, opens] = [record(rt, "close"), record(rt, "open")];
      await rt.connect();
      // The link goes dead without a FIN (a sleeping laptop's Wi-Fi): bytes vanish, the socket stays open,
      // and its close would take the close handshake's timeout. The clock jumps past two silent beats.
      proxy.blackhole = true;
      setSystemTime(new Date(Date.now() + 60_000));
      expect(await closes.next(undefined, 2500)).toMatchObject({
        reconnecting: true,
        reason: "heartbeat timeout",
      });
      proxy.blackhole = false;
      await opens.next((o) => o.reconnected, 2000);
      expect(fake.upgrades).toBe(2);
    } finally {
      setSystemTime();
      rt.close();
      proxy.stop();
      fake.stop();
    }
  });
});

describe("close() with a REST call on its way", () => {
  it("fails the call with closed at once, and later calls go out as usual", async () => {
    const { ParleyClient, ParleyError } = await import("../../src/client/index.ts");
    // A server that never answers /hang and answers everything else.
    const hanging = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req) =>
        new URL(req.url).pathname === "/hang" ? new Promise<Response>(() => {}) : Response.json({ ok: true }),
    });
    try {
      const client = new ParleyClient({ baseUrl: `http://127.0.0.1:${hanging.port}` });
      const pending = client.rest.request("GET", "/hang").catch((err: unknown) => err);
      await Bun.sleep(50);
      // Without the cancel the call would wait out its 30 s timeout, past the test's own.
      client.close();
      const err = await pending;
      expect(err).toBeInstanceOf(ParleyError);
      expect((err as InstanceType<typeof ParleyError>).code).toBe("closed");
      expect(await client.rest.request("GET", "/fine")).toEqual({ ok: true });
    } finally {
      hanging.stop(true);
    }
  });
});

describe("close() with a refresh on its way", () => {
  it("lets it finish: given up after the server spent the token, its new tokens would be lost", async () => {
    const { ParleyClient } = await import("../../src/client/index.ts");
    const slow = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async () => {
        await Bun.sleep(150);
        return Response.json(
          { error: { code: "unauthorized", message: "invalid refresh token" } },
          { status: 401 },
        );
      },
    });
    try {
      const client = new ParleyClient({ baseUrl: `http://127.0.0.1:${slow.port}` });
      const pending = client.rest.refresh("x".repeat(43)).catch((err: { code?: string }) => err);
      await Bun.sleep(30);
      client.close();
      expect(((await pending) as { code?: string }).code).toBe("unauthorized");
    } finally {
      slow.stop(true);
    }
  });
});
