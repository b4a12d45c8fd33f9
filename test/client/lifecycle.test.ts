// The SDK's own lifecycle: close() ends a connect() still under way and leaves nothing running (a
// script exits by itself), a connection that stops for good (closed, never opened, session over) says so
// once and leaves nothing of its socket behind, and a link the heartbeat finds dead is left at once.

import { afterAll, beforeAll, describe, expect, it, setSystemTime } from "bun:test";
import { join } from "node:path";
import { ParleyClient, ParleyError } from "../../src/client/index.ts";
import type { RealtimeOptions } from "../../src/client/realtime.ts";
import { CLOSE } from "../../src/realtime/frames.ts";
import { waitFor } from "../helpers.ts";
import {
  type FakeServer,
  fakeConnection,
  fakeServer,
  holdReconnects,
  record,
  rejection,
  type Server,
  startServer,
  tcpProxy,
} from "./helpers.ts";

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
    const rt = fakeConnection(proxy.baseUrl, { backoff: { minMs: 5, maxMs: 20 } });
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

describe("a server that never says hello", () => {
  it("fails a first connect() with closed once helloTimeoutMs passes, instead of leaving it waiting", async () => {
    const fake = fakeServer({ mute: () => true });
    const rt = fakeConnection(fake.baseUrl, { helloTimeoutMs: 300 });
    try {
      const closes = record(rt, "close");
      const outcome = await Promise.race([
        rejection(rt.connect()).then((err) => err.code),
        Bun.sleep(3000).then(() => "still waiting"),
      ]);
      expect(outcome).toBe("closed");
      expect(closes.items).toMatchObject([{ reconnecting: false }]);
      expect(rt.connected).toBe(false);
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("leaves a reconnect's socket that says no hello and tries again, and a send made meanwhile is acked once", async () => {
    let mute = false;
    const fake = fakeServer({ mute: () => mute });
    const rt = fakeConnection(fake.baseUrl, { helloTimeoutMs: 300, requestTimeoutMs: 5000 });
    try {
      const [closes, opens] = [record(rt, "close"), record(rt, "open")];
      await rt.connect();
      mute = true;
      for (const ws of fake.sockets) ws.close(CLOSE.restart, "restart");
      await closes.next((c) => c.reconnecting);
      const sent = rt.send("c", { content: "hi" });
      // The stuck socket is left for another one, which says hello.
      await waitFor(() => (fake.upgrades >= 2 ? true : undefined));
      mute = false;
      await opens.next((o) => o.reconnected, 3000);
      expect(fake.upgrades).toBeGreaterThanOrEqual(3);
      expect((await sent).client_msg_id).toBeString();
      expect(fake.frames.filter((f) => f.type === "message")).toHaveLength(1);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("a WebSocket that throws when made", () => {
  it("fails connect() with closed (a SecurityError, a polyfill refusing the subprotocols) instead of leaving it waiting", async () => {
    const Throwing = class {
      constructor() {
        throw new DOMException("refused", "SecurityError");
      }
    } as unknown as typeof WebSocket;
    const rt = fakeConnection("http://127.0.0.1:9", { WebSocket: Throwing });
    const closes = record(rt, "close");
    try {
      const outcome = await Promise.race([
        rejection(rt.connect()),
        Bun.sleep(2000).then(() => "still waiting"),
      ]);
      expect(outcome).toBeInstanceOf(ParleyError);
      expect((outcome as ParleyError).code).toBe("closed");
      expect((await closes.next()).reconnecting).toBe(false);
    } finally {
      rt.close();
    }
  });
});

describe("a frame the SDK cannot make sense of", () => {
  it("is told as a bad_frame error event, and the connection goes on", async () => {
    const fake = fakeServer({
      opened: (ws) =>
        ws.send(
          JSON.stringify({ type: "key_exchange", from_user_id: "x", from_device_id: "d", payload: 42 }),
        ),
    });
    const rt = fakeConnection(fake.baseUrl);
    const errors = record(rt, "error");
    try {
      await rt.connect();
      expect((await errors.next()).code).toBe("bad_frame");
      await rt.presence("online");
      expect(rt.connected).toBe(true);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("a request its encoding cannot carry (a BigInt in JSON)", () => {
  const bad = { content: "x", extra: 10n } as never;

  it("fails with bad_request at once, and nothing of it is left to fail later", async () => {
    const fake = fakeServer();
    const rt = fakeConnection(fake.baseUrl);
    try {
      await rt.connect();
      const err = await rejection(rt.send("c", bad));
      expect(err.code).toBe("bad_request");
      expect(typeof err.details.client_msg_id).toBe("string");
      // Nothing left waiting: a request left behind would time out later, unheard (an unhandled rejection).
      const pending = (rt as unknown as { sender: { pending: { entries(): unknown[] } } }).sender.pending;
      expect(pending.entries()).toEqual([]);
      expect((await rt.send("c", { content: "after" })).client_msg_id).toBeString();
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("made before the hello, fails with bad_request there, and the hello and the other requests go on", async () => {
    const fake = fakeServer();
    const rt = fakeConnection(fake.baseUrl);
    try {
      const failed = rejection(rt.send("c", bad));
      const good = rt.send("c", { content: "fine" });
      await rt.connect();
      expect((await failed).code).toBe("bad_request");
      expect((await good).client_msg_id).toBeString();
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("delays given as options", () => {
  it("are refused when built if they are not positive numbers, naming the option: none reconnects or times out in a loop", () => {
    const bad: Partial<RealtimeOptions>[] = [
      { backoff: { minMs: Number.NaN } },
      { backoff: { maxMs: 0 } },
      { backoff: { resetAfterMs: -1 } },
      { requestTimeoutMs: 0 },
      { helloTimeoutMs: Number.POSITIVE_INFINITY },
    ];
    for (const opts of bad) {
      const name = Object.keys(opts.backoff ?? opts)[0] as string;
      expect(() => fakeConnection(s.baseUrl, opts)).toThrow(name);
      expect(() => new ParleyClient({ baseUrl: s.baseUrl, ...opts })).toThrow(name);
    }
  });
});

describe("a socket that drops with requests written on it", () => {
  it("fails one that may not be sent twice (key_exchange) with closed, and does not send it again on the next socket", async () => {
    const fake = fakeServer({
      // The socket drops before the answer: the server may have passed it on already.
      answer: (f, ws) =>
        f.type === "key_exchange" ? void ws.close(CLOSE.restart, "restart") : { type: "ok", ref: f.ref },
    });
    const rt = fakeConnection(fake.baseUrl);
    try {
      const opens = record(rt, "open");
      await rt.connect();
      const err = await rejection(rt.keyExchange("peer", new Uint8Array([1, 2, 3])));
      expect(err.code).toBe("closed");
      await opens.next((o) => o.reconnected);
      // Answered after whatever the new socket sent at its hello.
      await rt.presence("online");
      expect(fake.frames.filter((f) => f.type === "key_exchange")).toHaveLength(1);
    } finally {
      rt.close();
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

describe("close() with a REST call waiting for its token", () => {
  it("fails the call with closed at once, and does not send it once the refresh is in", async () => {
    const paths: string[] = [];
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const c = await s.client({
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        if (url.pathname === "/api/auth/refresh") await gate;
        else paths.push(url.pathname);
        return res;
      },
    });
    // A device that slept through its refresh timer: the call's token is refreshed first.
    c.session!.expiresAt = Date.now() - 1000;
    paths.length = 0;
    const pending = c.rest.conversations.list().catch((err: unknown) => err);
    await waitFor(() =>
      (c as unknown as { tokens: { refreshing: unknown } }).tokens.refreshing ? true : undefined,
    );
    c.close();
    // At once: not after the refresh, which may take up to restTimeoutMs.
    expect(await Promise.race([pending, Bun.sleep(2000).then(() => "still waiting")])).toMatchObject({
      code: "closed",
    });
    release();
    await waitFor(() =>
      (c as unknown as { tokens: { refreshing: unknown } }).tokens.refreshing ? undefined : true,
    );
    expect(paths).toEqual([]);
    // The refresh was let finish, and calls made after close() go out as usual.
    expect((await c.rest.me()).id).toBe(c.session!.user.id);
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

describe("a connection that stops for good", () => {
  it("closed while connected: is not connected at once, and says so in one final close event", async () => {
    const fake = fakeServer();
    const rt = fakeConnection(fake.baseUrl);
    try {
      const closes = record(rt, "close");
      await rt.connect();
      rt.close();
      expect(rt.connected).toBe(false);
      expect(closes.items).toEqual([{ code: 1000, reason: "client closed", reconnecting: false }]);
      // The socket's own close, when it comes, tells nothing more.
      await waitFor(() => (fake.sockets.size === 0 ? true : undefined));
      await Bun.sleep(20);
      expect(closes.items).toHaveLength(1);
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("closed while waiting to reconnect: says so in a final close event too", async () => {
    const fake = fakeServer();
    // A reconnect far off: close() comes while it waits.
    const rt = fakeConnection(fake.baseUrl, { backoff: { minMs: 60_000, maxMs: 60_000 } });
    try {
      const closes = record(rt, "close");
      await rt.connect();
      for (const ws of fake.sockets) ws.close(CLOSE.restart, "restart");
      await closes.next((c) => c.reconnecting);
      rt.close();
      expect(await closes.next((c) => !c.reconnecting)).toEqual({
        code: 1000,
        reason: "client closed",
        reconnecting: false,
      });
      expect(closes.items).toHaveLength(2);
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("never opened: calls made after the failed connect() fail with closed at once", async () => {
    const fake = fakeServer({ refuse: () => true });
    // Without the stop, a call would wait for a connection that is not coming, until its timeout.
    const rt = fakeConnection(fake.baseUrl);
    try {
      const closes = record(rt, "close");
      expect((await rejection(rt.connect())).code).toBe("closed");
      expect(closes.items).toMatchObject([{ reconnecting: false }]);
      expect((await rejection(rt.presence("away"))).code).toBe("closed");
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("its session found over by the background check: what the resume under way held is dropped, not delivered by a later connect()", async () => {
    let refusals = 0;
    let answerResumes = false;
    const fake = fakeServer({
      refuse: () => refusals-- > 0,
      answer: (f) =>
        f.type === "resume"
          ? answerResumes
            ? { type: "resumed", ref: f.ref, conversation_id: "c", seq: 1 }
            : undefined
          : { type: f.type === "ping" ? "pong" : "ok", ref: f.ref, server_time: "" },
    });
    let revoke: () => void = () => {};
    const revoked = new Promise<void>((_, reject) => {
      revoke = () => reject(new ParleyError("session_revoked", "session revoked", 401));
    });
    revoked.catch(() => {});
    const rt = fakeConnection(fake.baseUrl, { positions: { c: 1 }, checkSession: () => revoked });
    try {
      const [events, closes] = [record(rt, "event"), record(rt, "close")];
      const resumes = () => fake.frames.filter((f) => f.type === "resume").length;
      await rt.connect();
      await waitFor(() => (resumes() === 1 ? true : undefined));
      // One refused upgrade starts the session check beside the reconnects, and the next one opens.
      refusals = 1;
      for (const ws of fake.sockets) ws.close(CLOSE.restart, "restart");
      await waitFor(() => (resumes() === 2 ? true : undefined));
      // A change that skips seq 2 while the resume is under way: held until the resume has replayed seq 2.
      const three = { id: "m3", sender_id: "x", content: "three", created_at: "" };
      for (const ws of fake.sockets)
        ws.send(
          JSON.stringify({
            type: "event",
            kind: "message.created",
            conversation_id: "c",
            seq: 3,
            message: three,
          }),
        );
      await rt.presence("online");
      revoke();
      expect((await closes.next((c) => !c.reconnecting)).error?.code).toBe("session_revoked");
      // Connected again (signed in anew), its resume finds nothing new: seq 3 was never replayed here.
      answerResumes = true;
      await rt.connect();
      await waitFor(() => (resumes() === 3 ? true : undefined));
      await rt.presence("online");
      expect(events.items).toEqual([]);
      expect(rt.positions).toEqual({ c: 1 });
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("connect() while the connection is running", () => {
  /** A token that takes a moment, as a refresh does: the connect waits for it with no socket yet. */
  const slowToken = async () => {
    await Bun.sleep(20);
    return "t";
  };

  /** Upgrades and open sockets once `ms` have passed: time for a second socket, if one were coming. */
  async function socketsAfter(fake: FakeServer, ms = 50) {
    await Bun.sleep(ms);
    return { upgrades: fake.upgrades, open: fake.sockets.size };
  }

  it("waiting to reconnect: reconnects at once, and the reconnect that was waiting does not come (one socket)", async () => {
    const fake = fakeServer();
    // A reconnect 1-2 s off: far enough that "at once" holds on a loaded machine, near enough that a second
    // loop's would open a second socket within the test.
    const rt = fakeConnection(fake.baseUrl, { backoff: { minMs: 2000, maxMs: 2000 } });
    try {
      const [closes, opens] = [record(rt, "close"), record(rt, "open")];
      await rt.connect();
      for (const ws of fake.sockets) ws.close(CLOSE.restart, "restart");
      await closes.next((c) => c.reconnecting);
      const at = Date.now();
      expect((await rt.connect()).reconnected).toBe(true);
      expect(Date.now() - at).toBeLessThan(900);
      // Past the time the waiting reconnect would have come.
      expect(await socketsAfter(fake, 2100)).toEqual({ upgrades: 2, open: 1 });
      expect(opens.items.map((o) => o.reconnected)).toEqual([false, true]);
    } finally {
      rt.close();
      fake.stop();
    }
  }, 20_000);

  it("still connecting: joins that connect (both resolve on its hello, one socket)", async () => {
    const fake = fakeServer();
    const rt = fakeConnection(fake.baseUrl, { token: slowToken });
    try {
      const [first, second] = await Promise.all([rt.connect(), rt.connect()]);
      expect(second).toEqual(first);
      expect(await socketsAfter(fake)).toEqual({ upgrades: 1, open: 1 });
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("after close() while an earlier connect waited for its token: only the new connect opens a socket", async () => {
    const fake = fakeServer();
    const rt = fakeConnection(fake.baseUrl, { token: slowToken });
    try {
      const earlier = rejection(rt.connect());
      rt.close();
      expect((await earlier).code).toBe("closed");
      await rt.connect();
      expect(await socketsAfter(fake)).toEqual({ upgrades: 1, open: 1 });
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("after close() while a failed first connect waited for its session check: the check's answer leaves the new connection alone", async () => {
    let refusals = 1;
    const fake = fakeServer({ refuse: () => refusals-- > 0 });
    let answer: () => void = () => {};
    const check = new Promise<void>((r) => {
      answer = r;
    });
    const rt = fakeConnection(fake.baseUrl, { checkSession: () => check });
    try {
      const closes = record(rt, "close");
      const earlier = rejection(rt.connect());
      await waitFor(() => (fake.upgrades === 1 ? true : undefined));
      rt.close();
      expect((await earlier).code).toBe("closed");
      await rt.connect();
      // The session stands: the closed run would now retry, on top of the connection that is open.
      answer();
      await Bun.sleep(50);
      expect(closes.items).toHaveLength(1);
      expect(fake.upgrades).toBe(2);
      expect(rt.connected).toBe(true);
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("through ParleyClient, waiting to reconnect: joins the reconnect (one socket)", async () => {
    const b = await s.client();
    await b.connect({ positions: {} });
    const [closes, opens] = [record(b, "close"), record(b, "open")];
    const held = holdReconnects(b);
    const sockets = () => [...s.h.deps.gateway.connections.ofUser(b.session!.user.id)];
    for (const ws of sockets()) ws.close(CLOSE.restart, "test");
    await closes.next((c) => c.reconnecting);
    const joined = b.connect();
    held.open();
    expect((await joined).reconnected).toBe(true);
    await Bun.sleep(50);
    expect(opens.items).toHaveLength(1);
    expect(sockets()).toHaveLength(1);
  });

  it("through ParleyClient, with positions while one is on its way: joins it from the same, fails with bad_request from others", async () => {
    const b = await s.client();
    const positions = { "c-none": 0 };
    const first = b.connect({ positions: { ...positions } });
    const same = b.connect({ positions: { ...positions } });
    const other = rejection(b.connect({ positions: { "c-none": 5 } }));
    const fewer = rejection(b.connect({ positions: {} }));
    const [opened, joined] = await Promise.all([first, same]);
    expect(joined).toEqual(opened);
    for (const err of [await other, await fewer]) expect(err.code).toBe("bad_request");
    await Bun.sleep(50);
    expect(b.realtime.connected).toBe(true);
    expect([...s.h.deps.gateway.connections.ofUser(b.session!.user.id)]).toHaveLength(1);
  });

  it("through ParleyClient, two at once: the second joins the first (one socket)", async () => {
    const b = await s.client();
    const [first, second] = await Promise.all([b.connect(), b.connect()]);
    expect(second).toEqual(first);
    await Bun.sleep(50);
    expect([...s.h.deps.gateway.connections.ofUser(b.session!.user.id)]).toHaveLength(1);
  });

  it("through ParleyClient, two at once: the second joins the first though that one was connected before the second had listed", async () => {
    const b = await s.client();
    const conversations = b.rest.conversations;
    const all = conversations.all;
    let calls = 0;
    let answer = () => {};
    const held = new Promise<void>((resolve) => {
      answer = resolve;
    });
    // The second connect()'s list of conversations comes back only once the first has had its hello.
    conversations.all = async () => {
      const call = ++calls;
      const list = await all();
      if (call === 2) await held;
      return list;
    };
    const [first, second] = [b.connect(), b.connect()];
    const opened = await first;
    answer();
    expect(await second).toEqual(opened);
    await Bun.sleep(50);
    expect([...s.h.deps.gateway.connections.ofUser(b.session!.user.id)]).toHaveLength(1);
  });

  it("connected: fails with bad_request, and the connection goes on", async () => {
    const fake = fakeServer();
    const rt = fakeConnection(fake.baseUrl);
    try {
      await rt.connect();
      expect((await rejection(rt.connect())).code).toBe("bad_request");
      expect(rt.connected).toBe(true);
      await rt.presence("online");
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("connect() after close()", () => {
  it("through ParleyClient, made in the same tick as close(): the earlier connect's failure leaves the new connection in place", async () => {
    const b = await s.client();
    const sockets = () => [...s.h.deps.gateway.connections.ofUser(b.session!.user.id)];
    const earlier = rejection(b.connect({ positions: {} }));
    b.close();
    const later = b.connect({ positions: {} });
    expect((await earlier).code).toBe("closed");
    await later;
    expect(b.realtime.connected).toBe(true);
    b.close();
    await waitFor(() => (sockets().length === 0 ? true : undefined));
  });

  it("is a first connect again: one that fails is not retried, and fails with closed", async () => {
    let refuse = false;
    const fake = fakeServer({ refuse: () => refuse });
    const rt = fakeConnection(fake.baseUrl);
    try {
      await rt.connect();
      rt.close();
      refuse = true;
      const closes = record(rt, "close");
      const outcome = await Promise.race([
        rejection(rt.connect()).then((err) => err.code),
        Bun.sleep(1000).then(() => "still trying"),
      ]);
      expect(outcome).toBe("closed");
      expect(closes.items).toMatchObject([{ reconnecting: false }]);
      const upgrades = fake.upgrades;
      await Bun.sleep(100);
      expect(fake.upgrades).toBe(upgrades);
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("starts its reconnect delays from minMs again, not where the closed run's had grown to", async () => {
    let closeAtOnce = true;
    const fake = fakeServer({ opened: (ws) => closeAtOnce && ws.close(CLOSE.restart, "again") });
    const rt = fakeConnection(fake.baseUrl, { backoff: { minMs: 5, maxMs: 5000, resetAfterMs: 60_000 } });
    try {
      const opens = record(rt, "open");
      await rt.connect();
      // Nine closes soon after hello: the next delay would be 1.28-2.56 s.
      await opens.count(10, undefined, 10_000);
      rt.close();
      closeAtOnce = false;
      await rt.connect();
      const at = Date.now();
      for (const ws of fake.sockets) ws.close(CLOSE.restart, "once");
      await opens.next((o) => o.reconnected && opens.items.indexOf(o) > 10);
      expect(Date.now() - at).toBeLessThan(1000);
    } finally {
      rt.close();
      fake.stop();
    }
  }, 20_000);

  it("says reconnected: false, and resumes every conversation it knows from where it was", async () => {
    const fake = fakeServer({
      answer: (f) =>
        f.type === "resume"
          ? undefined
          : { type: f.type === "ping" ? "pong" : "ok", ref: f.ref, server_time: "" },
    });
    const rt = fakeConnection(fake.baseUrl, { positions: { c: 3 } });
    try {
      const events = record(rt, "event");
      expect((await rt.connect()).reconnected).toBe(false);
      const four = { id: "m4", sender_id: "x", content: "four", created_at: "" };
      for (const ws of fake.sockets)
        ws.send(JSON.stringify({ type: "resumed", conversation_id: "c", seq: 3, ref: 1 }));
      for (const ws of fake.sockets)
        ws.send(
          JSON.stringify({
            type: "event",
            kind: "message.created",
            conversation_id: "c",
            seq: 4,
            message: four,
          }),
        );
      await events.next((e) => e.seq === 4);
      rt.close();
      expect((await rt.connect()).reconnected).toBe(false);
      await waitFor(() => (fake.frames.filter((f) => f.type === "resume").length === 2 ? true : undefined));
      expect(fake.frames.filter((f) => f.type === "resume").map((f) => f.positions)).toEqual([
        { c: 3 },
        { c: 4 },
      ]);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});
