import { afterEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { runCli } from "../../src/cli.ts";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { call, type Harness, harness, signup, waitFor } from "../helpers.ts";
import {
  burst,
  connect,
  type Frame,
  userSocket as openUserSocket,
  type SocketUser,
  type TestSocket,
  UPGRADE_HEADERS,
  upgradeStatus,
} from "./ws-client.ts";

let h: Harness | undefined;
const open: TestSocket[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) s.close();
  await h?.app.stop(true);
  await h?.close();
  h = undefined;
});

async function start(env: Record<string, string> = {}) {
  h = await harness(env);
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  return { h, base: `ws://127.0.0.1:${h.app.server?.port}` };
}
const userSocket = (base: string, u: SocketUser, encoding: "msgpack" | "json" = "msgpack") =>
  openUserSocket(base, u, encoding, open);

describe("public channels and announcements", () => {
  it("delivers an admin's announcement to every subscriber of the channel, and only them", async () => {
    const { h, base } = await start();
    const admin = await signup(h.app);
    const lines: string[] = [];
    expect(await runCli(["admin", "grant", admin.username], h.config, (l) => lines.push(l))).toBe(0);
    expect(lines.join()).toContain("now an admin");
    const news = await connect(`${base}/ws/public/news`, ["parley.json"]);
    const other = await connect(`${base}/ws/public/sports`);
    open.push(news, other);
    other.send({ type: "subscribe", ref: "s", channel: "weather" });
    await other.next((f) => f.type === "ok" && f.ref === "s");
    const res = await call(h.app, "POST", "/api/announcements", {
      token: admin.token,
      body: { channel: "news", text: "v2 is out" },
    });
    expect(res.status).toBe(201);
    expect(await news.next((f) => f.type === "announcement")).toMatchObject({
      channel: "news",
      text: "v2 is out",
    });
    await call(h.app, "POST", "/api/announcements", {
      token: admin.token,
      body: { channel: "weather", text: "rain" },
    });
    expect(await other.next((f) => f.type === "announcement")).toMatchObject({
      channel: "weather",
      text: "rain",
    });
    expect(other.frames.some((f) => f.type === "announcement" && f.channel === "news")).toBe(false);
  });

  it("refuses announcements from users without the admin role (403), and revoking takes it away", async () => {
    const { h } = await start();
    const user = await signup(h.app);
    const res = await call(h.app, "POST", "/api/announcements", {
      token: user.token,
      body: { channel: "news", text: "hi" },
    });
    expect(res.status).toBe(403);
    await runCli(["admin", "grant", user.email], h.config, () => {});
    expect(
      (
        await call(h.app, "POST", "/api/announcements", {
          token: user.token,
          body: { channel: "news", text: "hi" },
        })
      ).status,
    ).toBe(201);
    await runCli(["admin", "revoke", user.username], h.config, () => {});
    expect(
      (
        await call(h.app, "POST", "/api/announcements", {
          token: user.token,
          body: { channel: "news", text: "hi" },
        })
      ).status,
    ).toBe(403);
    expect(await runCli(["admin", "grant", "nobody-such"], h.config, () => {})).toBe(1);
    expect(await runCli(["bogus"], h.config, () => {})).toBe(64);
  });

  it("counts a public socket's own channel (its path's) among its WS_MAX_CHANNELS", async () => {
    const { base } = await start({ WS_MAX_CHANNELS: "2" });
    const s = await connect(`${base}/ws/public/one`);
    open.push(s);
    s.send({ type: "subscribe", ref: "a", channel: "two" });
    expect(await s.next((f) => f.ref === "a")).toMatchObject({ type: "ok" });
    s.send({ type: "subscribe", ref: "b", channel: "three" });
    expect(await s.next((f) => f.ref === "b")).toMatchObject({ type: "error", code: "validation_failed" });
  });

  it("limits the public channels of one socket to WS_MAX_CHANNELS", async () => {
    const { base } = await start({ WS_MAX_CHANNELS: "2" });
    const s = await connect(`${base}/ws/public/one`);
    open.push(s);
    s.send({ type: "subscribe", ref: "a", channel: "two" });
    expect(await s.next((f) => f.ref === "a")).toMatchObject({ type: "ok" });
    s.send({ type: "subscribe", ref: "b", channel: "one" }); // already in: no new slot needed
    expect(await s.next((f) => f.ref === "b")).toMatchObject({ type: "ok" });
    s.send({ type: "subscribe", ref: "c", channel: "three" });
    expect(await s.next((f) => f.ref === "c")).toMatchObject({ type: "error", code: "validation_failed" });
  });

  it("unsubscribes a socket from a channel, its path's too: announcements there stop, and the slot is free", async () => {
    const { h, base } = await start({ WS_MAX_CHANNELS: "2" });
    const admin = await signup(h.app);
    await runCli(["admin", "grant", admin.username], h.config, () => {});
    const s = await connect(`${base}/ws/public/one`, ["parley.json"]);
    open.push(s);
    const ask = async (frame: Record<string, unknown>) => {
      s.send(frame);
      return s.next((f) => f.ref === frame.ref);
    };
    expect(await ask({ type: "subscribe", ref: "a", channel: "two" })).toMatchObject({ type: "ok" });
    expect(await ask({ type: "unsubscribe", ref: "b", channel: "two" })).toMatchObject({ type: "ok" });
    expect(await ask({ type: "unsubscribe", ref: "c", channel: "never" })).toMatchObject({ type: "ok" });
    expect(await ask({ type: "unsubscribe", ref: "d", channel: "one" })).toMatchObject({ type: "ok" });
    expect(await ask({ type: "unsubscribe", ref: "e", channel: "no way" })).toMatchObject({
      type: "error",
      code: "validation_failed",
    });
    // Both slots free again: the path's channel's too.
    expect(await ask({ type: "subscribe", ref: "f", channel: "three" })).toMatchObject({ type: "ok" });
    expect(await ask({ type: "subscribe", ref: "g", channel: "four" })).toMatchObject({ type: "ok" });
    for (const channel of ["one", "two", "four"])
      await call(h.app, "POST", "/api/announcements", {
        token: admin.token,
        body: { channel, text: channel },
      });
    expect(await s.next((f) => f.type === "announcement")).toMatchObject({ channel: "four" });
    expect(s.frames.filter((f) => f.type === "announcement")).toHaveLength(1);
  });

  it("says no hello on a public socket, answers its ping, and closes it with 4003 only once it falls silent", async () => {
    const { base } = await start({ WS_HEARTBEAT_INTERVAL: "1", WS_CONNECTION_TIMEOUT: "2" });
    const [beating, silent] = [
      await connect(`${base}/ws/public/news`, ["parley.json"]),
      await connect(`${base}/ws/public/news`, ["parley.json"]),
    ];
    open.push(beating, silent);
    const opened = Date.now();
    // Pings, as told, past the timeout and a sweep: each answered, the socket kept.
    for (let i = 0; i < 6; i++) {
      beating.send({ type: "ping", ref: i });
      expect(await beating.next((f) => f.ref === i)).toMatchObject({ type: "pong" });
      await Bun.sleep(500);
    }
    expect(await silent.closed).toMatchObject({ code: 4003 });
    expect(Date.now() - opened).toBeGreaterThanOrEqual(2000);
    expect(beating.ws.readyState).toBe(WebSocket.OPEN);
    expect(beating.frames.map((f) => f.type)).toEqual(Array(6).fill("pong"));
    expect(silent.frames).toEqual([]);
  });

  it("refuses a channel name that is not 1 to 64 letters, digits, _, . or -: 422 at the upgrade, validation_failed to subscribe", async () => {
    const { h, base } = await start();
    for (const bad of ["a".repeat(65), "a%20b", "caf%C3%A9", "a+b"])
      expect(await upgradeStatus(`${base}/ws/public/${bad}`)).toBe(422);
    expect(await upgradeStatus(`${base}/ws/public/${"a".repeat(64)}`)).toBe(101);
    const s = await connect(`${base}/ws/public/news`, ["parley.json"]);
    open.push(s);
    for (const [ref, channel] of [
      ["long", "a".repeat(65)],
      ["empty", ""],
      ["space", "a b"],
    ]) {
      s.send({ type: "subscribe", ref, channel });
      expect(await s.next((f) => f.ref === ref)).toMatchObject({ type: "error", code: "validation_failed" });
    }
    const admin = await signup(h.app);
    await runCli(["admin", "grant", admin.username], h.config, () => {});
    for (const channel of ["", "a".repeat(65), "a b"]) {
      const res = await call(h.app, "POST", "/api/announcements", {
        token: admin.token,
        body: { channel, text: "hi" },
      });
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: "validation_failed", field: "channel" });
    }
  });

  it("refuses the channel names . and .., which no URL path can name (a client's URL drops them), everywhere", async () => {
    const { h, base } = await start();
    // What a client makes of /ws/public/.. : the path without it, which is no public channel.
    expect(new URL(`${base}/ws/public/..`).pathname).toBe("/ws/");
    const s = await connect(`${base}/ws/public/news`, ["parley.json"]);
    open.push(s);
    for (const channel of [".", ".."]) {
      s.send({ type: "subscribe", ref: channel, channel });
      expect(await s.next((f) => f.ref === channel)).toMatchObject({
        type: "error",
        code: "validation_failed",
        message: "channel: must be 1 to 64 letters, digits, _, . or -, and not . or ..",
      });
    }
    const admin = await signup(h.app);
    await runCli(["admin", "grant", admin.username], h.config, () => {});
    for (const channel of [".", ".."]) {
      const res = await call(h.app, "POST", "/api/announcements", {
        token: admin.token,
        body: { channel, text: "hi" },
      });
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: "validation_failed", field: "channel" });
    }
    // Dots among other characters are names as any other.
    for (const channel of ["...", ".a", "a.b"]) {
      s.send({ type: "subscribe", ref: channel, channel });
      expect(await s.next((f) => f.ref === channel)).toMatchObject({ type: "ok" });
      expect(await upgradeStatus(`${base}/ws/public/${channel}`)).toBe(101);
    }
  });

  it("echoes only refs the protocol allows", async () => {
    const { base } = await start();
    const s = await connect(`${base}/ws/public/news`, ["parley.json"]);
    open.push(s);
    s.send({ type: "ping", ref: "x".repeat(5000) });
    const reply = await s.next((f) => f.type === "error");
    expect(reply.ref).toBeUndefined();
  });

  it("keeps public sockets receive-only", async () => {
    const { base } = await start();
    const s = await connect(`${base}/ws/public/news`);
    open.push(s);
    s.send({ type: "message", ref: "m", conversation_id: "x", client_msg_id: "y", content: "hi" });
    expect(await s.next((f) => f.type === "error" && f.ref === "m")).toMatchObject({ code: "forbidden" });
  });
});

describe("presence", () => {
  it("makes a user online with their first socket and offline with last_seen when the last one closes", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const b = await userSocket(base, bob);
    const a = await userSocket(base, alice, "json");
    expect(
      await b.next((f) => f.type === "presence" && f.user_id === alice.id && f.status === "online"),
    ).toBeDefined();
    a.send({ type: "presence_update", status: "dnd" });
    expect(await b.next((f) => f.type === "presence" && f.status === "dnd")).toBeDefined();
    a.close();
    const offline = await b.next(
      (f) => f.type === "presence" && f.user_id === alice.id && f.status === "offline",
    );
    expect(offline.last_seen).not.toBeNull();
    expect((await call(h.app, "GET", `/api/users/${alice.id}`, { token: bob.token })).body.status).toBe(
      "offline",
    );
  });

  it("tells a channel's owner of its readers, and its readers of the owner, but not the readers of each other", async () => {
    const { h, base } = await start();
    const [owner, r1, r2] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [r1.id, r2.id] },
    });
    expect(made.status).toBe(201);
    const [o, first] = [await userSocket(base, owner), await userSocket(base, r1)];
    await o.next((f) => f.type === "presence" && f.user_id === r1.id && f.status === "online");
    const second = await userSocket(base, r2);
    await o.next((f) => f.type === "presence" && f.user_id === r2.id && f.status === "online");
    second.send({ type: "presence_update", status: "away" });
    await o.next((f) => f.type === "presence" && f.user_id === r2.id && f.status === "away");
    // The owner's own change after it: had r2's reached r1, it would have come first.
    const o2 = await userSocket(base, owner);
    o2.send({ type: "presence_update", status: "dnd" });
    await first.next((f) => f.type === "presence" && f.user_id === owner.id && f.status === "dnd");
    expect(first.frames.some((f) => f.type === "presence" && f.user_id === r2.id)).toBe(false);
  });

  it("tells peers a status set over REST as one set through a socket, and her other devices too", async () => {
    const { h, base } = await start();
    const [alice, bob, eve] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const [b, a, e] = [
      await userSocket(base, bob),
      await userSocket(base, alice),
      await userSocket(base, eve),
    ];
    const res = await call(h.app, "PUT", `/api/users/${alice.id}`, {
      token: alice.token,
      body: { status: "away" },
    });
    expect(res.body.status).toBe("away");
    for (const s of [b, a])
      expect(
        await s.next((f) => f.type === "presence" && f.user_id === alice.id && f.status === "away"),
      ).toMatchObject({ last_seen: null });
    // Eve shares no conversation with her: told nothing. (Her own name change after is no presence either.)
    await call(h.app, "PUT", `/api/users/${alice.id}`, { token: alice.token, body: { display_name: "Al" } });
    a.send({ type: "ping", ref: "p" });
    await a.next((f) => f.type === "pong");
    expect(e.frames.some((f) => f.type === "presence" && f.user_id === alice.id)).toBe(false);
    expect(
      b.frames.filter((f) => f.type === "presence" && f.user_id === alice.id && f.status === "away"),
    ).toHaveLength(1);
  });
});

/** Alice and bob share a dm; bob is connected. */
async function pair() {
  const { h, base } = await start();
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "dm", participant_ids: [bob.id] },
  });
  return { h, base, alice, bob, b: await userSocket(base, bob) };
}

describe("a chosen status", () => {
  const presenceOf = (userId: string) => (f: Frame) => f.type === "presence" && f.user_id === userId;
  const statusOf = async (h: Harness, userId: string) => (await h.deps.store.users.byId(userId))?.status;

  it("is shown again when the user next connects, and one who chose offline comes and goes unseen", async () => {
    const { h, base, alice, bob, b } = await pair();
    let a = await userSocket(base, alice);
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "online");
    a.send({ type: "presence_update", status: "dnd" });
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "dnd");
    a.close();
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "offline");
    const from = b.frames.length;
    a = await userSocket(base, alice);
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "dnd" && b.frames.indexOf(f) >= from);
    expect(b.frames.slice(from).filter(presenceOf(alice.id))).toHaveLength(1);
    expect(await statusOf(h, alice.id)).toBe("dnd");

    // She chooses to appear offline: her connections come and go unseen, their last_seen unmoved.
    a.send({ type: "presence_update", status: "offline" });
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "offline" && b.frames.indexOf(f) >= from);
    const unseen = b.frames.length;
    const gone = () => (h.deps.gateway.connections.ofUser(alice.id).size === 0 ? true : undefined);
    const lastSeen = (await h.deps.store.users.byId(alice.id))?.last_seen;
    a.close();
    await waitFor(gone);
    a = await userSocket(base, alice);
    a.close();
    await waitFor(gone);
    a = await userSocket(base, alice);
    // Her first frame after hello orders after what her connection wrote (one group commit after another).
    a.send({ type: "presence_update", status: "away" });
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "away");
    expect(
      b.frames
        .slice(unseen)
        .filter(presenceOf(alice.id))
        .map((f) => f.status),
    ).toEqual(["away"]);
    expect((await h.deps.store.users.byId(alice.id))?.last_seen).toBe(lastSeen);
    // Bob, who never chose, is online.
    expect(await statusOf(h, bob.id)).toBe("online");
    a.close();
  });

  it("set over REST while not connected tells nobody, and is shown when the user connects", async () => {
    const { h, base, alice, b } = await pair();
    const res = await call(h.app, "PUT", `/api/users/${alice.id}`, {
      token: alice.token,
      body: { status: "away" },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "offline", chosen_status: "away" });
    expect(await statusOf(h, alice.id)).toBe("offline");
    const a = await userSocket(base, alice);
    const shown = await b.next(presenceOf(alice.id));
    expect(shown.status).toBe("away");
    expect(b.frames.filter(presenceOf(alice.id))).toHaveLength(1);
    expect(await statusOf(h, alice.id)).toBe("away");
    // Connected now: a choice over REST is shown at once, and answered as shown.
    const busy = await call(h.app, "PUT", `/api/users/${alice.id}`, {
      token: alice.token,
      body: { status: "dnd" },
    });
    expect(busy.body).toMatchObject({ status: "dnd", chosen_status: "dnd" });
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "dnd");
    a.close();
    await b.next((f) => presenceOf(alice.id)(f) && f.status === "offline");
    expect((await h.deps.store.users.byId(alice.id))?.chosen_status).toBe("dnd");
  });
});

describe("a chosen status racing a last close", () => {
  it("set over REST as the user's last socket closes on another node, leaves them offline, the choice kept", async () => {
    const { h, alice, b } = await pair();
    // Her one socket is on another node: counted there when the REST call first looks, gone (its offline
    // write made, she was offline already) by the time the status is written.
    const broker = h.deps.broker;
    const count = broker.countSockets.bind(broker);
    let looks = 0;
    broker.countSockets = async (userId, delta) =>
      userId === alice.id && delta === 0 ? (looks++ === 0 ? 1 : 0) : count(userId, delta);
    try {
      const res = await call(h.app, "PUT", `/api/users/${alice.id}`, {
        token: alice.token,
        body: { status: "dnd" },
      });
      expect(res.body).toMatchObject({ status: "offline", chosen_status: "dnd" });
    } finally {
      broker.countSockets = count;
    }
    expect(await h.deps.store.users.byId(alice.id)).toMatchObject({
      status: "offline",
      chosen_status: "dnd",
    });
    await b.next((f) => f.type === "presence" && f.user_id === alice.id && f.status === "offline");
  });
});

describe("a last socket closed while its user's presence is being written", () => {
  it("leaves the user offline after a choice it made as it closed", async () => {
    const { h, base } = await start();
    const alice = await signup(h.app);
    const a = await userSocket(base, alice, "json");
    await waitFor(async () =>
      (await h.deps.store.users.byId(alice.id))?.status === "online" ? true : undefined,
    );
    const users = h.deps.store.users;
    const update = users.update.bind(users);
    let chosen: ReturnType<typeof update> | undefined;
    // The store takes its time to write her choice (a round trip to MongoDB, say).
    users.update = (id, patch) => {
      if (id !== alice.id || patch.status !== "away") return update(id, patch);
      chosen = Bun.sleep(150).then(() => update(id, patch));
      return chosen;
    };
    try {
      a.send({ type: "presence_update", status: "away" });
      await waitFor(() => (chosen ? true : undefined));
      a.close();
      await chosen;
    } finally {
      users.update = update;
    }
    await waitFor(async () => ((await users.byId(alice.id))?.status === "offline" ? true : undefined));
    expect((await users.byId(alice.id))?.chosen_status).toBe("away");
  });

  it("leaves the user offline when it was their first, closed as they were shown", async () => {
    const { h, base } = await start();
    const alice = await signup(h.app);
    const users = h.deps.store.users;
    const showChosen = users.showChosen.bind(users);
    let shown: Promise<unknown> | undefined;
    // The store takes its time to write her shown (a round trip to MongoDB, say).
    users.showChosen = (id, now) => {
      if (id !== alice.id) return showChosen(id, now);
      const write = Bun.sleep(150).then(() => showChosen(id, now));
      shown = write;
      return write;
    };
    try {
      const a = await userSocket(base, alice);
      a.close();
      await waitFor(() => (shown ? true : undefined));
      await shown;
    } finally {
      users.showChosen = showChosen;
    }
    await waitFor(async () => ((await users.byId(alice.id))?.status === "offline" ? true : undefined));
  });
});

describe("presence at shutdown", () => {
  it("writes the users of the closed sockets offline before the store closes", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    await userSocket(base, alice);
    await userSocket(base, bob);
    await waitFor(async () =>
      (await h.deps.store.users.byId(bob.id))?.status === "online" ? true : undefined,
    );
    // What shutdown does: sockets, then the store (closeDeps). Nothing may be left for a close handler.
    await h.deps.gateway.close();
    await h.deps.store.close();
    const reopened = await openSqliteStore(join(h.dataDir, "parley.db"));
    try {
      for (const u of [alice, bob]) expect((await reopened.users.byId(u.id))?.status).toBe("offline");
    } finally {
      await reopened.close();
    }
  });
});

describe("connection limits", () => {
  it("answers a flood with rate_limited errors, then closes with 4002", async () => {
    const { h, base } = await start({ WS_RATE_PER_SECOND: "1", WS_RATE_BURST: "3" });
    const user = await signup(h.app);
    const s = await userSocket(base, user);
    for (let i = 0; i < 40; i++) s.send({ type: "ping", ref: i });
    const refused = await s.next((f) => f.type === "error" && f.code === "rate_limited");
    expect(typeof refused.ref).toBe("number"); // the refused frame is named, so a client can fail its request
    expect((await s.closed).code).toBe(4002);
  });

  it("refuses public sockets past WS_MAX_PUBLIC_PER_IP from one address (429), and takes one after a close", async () => {
    const { h, base } = await start({ WS_MAX_PUBLIC_PER_IP: "2" });
    const first = await connect(`${base}/ws/public/news`);
    const second = await connect(`${base}/ws/public/sports`);
    open.push(first, second);
    await waitFor(() => (h.deps.gateway.connections.publicFrom("127.0.0.1") === 2 ? true : undefined));
    const refused = await fetch(`${base.replace("ws", "http")}/ws/public/news`, { headers: UPGRADE_HEADERS });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    // An account's sockets are not public ones: they still open.
    const user = await signup(h.app);
    await userSocket(base, user);
    first.close();
    await waitFor(() => (h.deps.gateway.connections.publicFrom("127.0.0.1") === 1 ? true : undefined));
    expect(await upgradeStatus(`${base}/ws/public/news`)).toBe(101);
    expect(h.deps.metrics.rateLimited.get(["ws_public_per_ip"])).toBe(1);
  });

  it("counts the public sockets of an IPv6 client by its /64 against WS_MAX_PUBLIC_PER_IP", async () => {
    const { h, base } = await start({ WS_MAX_PUBLIC_PER_IP: "1", TRUST_PROXY: "true" });
    const first = await connect(`${base}/ws/public/news`, ["parley.json"], {
      "x-forwarded-for": "2001:db8:0:7::1",
    });
    open.push(first);
    await waitFor(() => (h.deps.gateway.connections.publicFrom("2001:db8:0:7::1") === 1 ? true : undefined));
    expect(await upgradeStatus(`${base}/ws/public/news`, { "x-forwarded-for": "2001:db8:0:7::2" })).toBe(429);
    expect(await upgradeStatus(`${base}/ws/public/news`, { "x-forwarded-for": "2001:db8:0:8::1" })).toBe(101);
  });

  it("holds WS_MAX_CONNECTIONS_PER_USER against a burst of upgrades: the rest get 429", async () => {
    const { h, base } = await start({ WS_MAX_CONNECTIONS_PER_USER: "4" });
    const user = await signup(h.app);
    const url = `${base}/ws/${user.id}/${user.session_id}`;
    const sockets = await burst(Array(30).fill(url), ["parley.msgpack", `bearer.${user.token}`]);
    open.push(...sockets);
    expect(sockets.length).toBe(4);
    expect(h.deps.metrics.rateLimited.get(["ws_connections"])).toBe(26);
    // Every place taken is given back: after a close, one more fits, and only one.
    (sockets[0] as TestSocket).close();
    await waitFor(() => (h.deps.gateway.connections.all.size === 3 ? true : undefined));
    const again = await burst(Array(5).fill(url), ["parley.msgpack", `bearer.${user.token}`]);
    open.push(...again);
    expect(again.length).toBe(1);
  });

  it("answers a resume naming as many unknown conversations as a frame may with one error naming them", async () => {
    const { h, base } = await start();
    const user = await signup(h.app);
    const s = await userSocket(base, user, "json");
    const unknown = Array.from({ length: 1000 }, (_, i) => `01nosuchconversation${i}`);
    s.send({ type: "resume", ref: 9, positions: Object.fromEntries(unknown.map((id) => [id, 0])) });
    const error = await s.next((f) => f.type === "error" && f.ref === 9);
    expect(error).toMatchObject({ code: "not_found" });
    expect(error.conversation_ids).toEqual(unknown);
    s.send({ type: "ping", ref: "after" });
    await s.next((f) => f.type === "pong" && f.ref === "after");
    expect(s.frames.filter((f) => f.ref === 9)).toHaveLength(1);
  });

  it("answers 503 with Retry-After to any socket past WS_MAX_CONNECTIONS on the node", async () => {
    const { h, base } = await start({ WS_MAX_CONNECTIONS: "2" });
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    await userSocket(base, alice);
    open.push(await connect(`${base}/ws/public/news`));
    await waitFor(() => (h.deps.gateway.connections.all.size === 2 ? true : undefined));
    const user = await fetch(`${base.replace("ws", "http")}/ws/${bob.id}/${bob.session_id}`, {
      headers: { ...UPGRADE_HEADERS, authorization: `Bearer ${bob.token}` },
    });
    expect(user.status).toBe(503);
    expect(user.headers.get("retry-after")).toBe("5");
    expect(((await user.json()) as { error: { code: string } }).error.code).toBe("unavailable");
    expect(await upgradeStatus(`${base}/ws/public/sports`)).toBe(503);
    // Still 401 for a bad token: the node's capacity is no reason to skip authentication.
    expect(await upgradeStatus(`${base}/ws/${bob.id}/${bob.session_id}`)).toBe(401);
    (open.pop() as TestSocket).close();
    await waitFor(() => (h.deps.gateway.connections.all.size === 1 ? true : undefined));
    await userSocket(base, bob);
    expect(h.deps.metrics.rateLimited.get(["ws_node"])).toBe(2);
  });

  it("closes a socket silent for WS_CONNECTION_TIMEOUT seconds with 4003", async () => {
    // The heartbeat it is told must be shorter than the timeout (config.ts); this socket never beats.
    const { h, base } = await start({ WS_HEARTBEAT_INTERVAL: "1", WS_CONNECTION_TIMEOUT: "2" });
    const user = await signup(h.app);
    const s = await userSocket(base, user);
    const { code } = await s.closed;
    expect(code).toBe(4003);
  });

  it("closes a socket when its session ends (4500), and not before", async () => {
    const { h, base } = await start({ SESSION_MAX_DAYS: "1" });
    const user = await signup(h.app);
    const s = await userSocket(base, user);
    h.clock.advance(24 * 3600_000 - 1000);
    s.send({ type: "ping", ref: "still" });
    await s.next((f) => f.type === "pong" && f.ref === "still");
    await Bun.sleep(300); // a sweep runs every 250 ms
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
    h.clock.advance(1000);
    const { code, reason } = await s.closed;
    expect({ code, reason }).toEqual({ code: 4500, reason: "session expired" });
  });

  it("ends a typing indicator by itself after 6 seconds without a stop", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const dm = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const a = await userSocket(base, alice);
    const b = await userSocket(base, bob);
    a.send({ type: "typing_start", conversation_id: dm.body.id });
    await b.next((f) => f.type === "typing" && f.state === "start");
    const t0 = Date.now();
    await b.next((f) => f.type === "typing" && f.state === "stop", 8000);
    expect(Date.now() - t0).toBeGreaterThan(5000);
  }, 15000);

  it("carries binary payloads as base64url strings on JSON sockets", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const a = await userSocket(base, alice);
    const b = await userSocket(base, bob, "json");
    a.send({ type: "key_exchange", to_user_id: bob.id, payload: new Uint8Array([255, 254, 253]) });
    const got = await b.next((f) => f.type === "key_exchange");
    expect(got.payload).toBe(Buffer.from([255, 254, 253]).toString("base64url"));
  });
});
