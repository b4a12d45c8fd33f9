// The SDK's realtime connection against the real gateway: send and ack, every frame helper in both
// encodings, reconnect with resume (no gap, no duplicate), REST catch-up on resync, terminal closes.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Packr } from "msgpackr";
import { runCli } from "../../src/cli.ts";
import { type ConversationEvent, fromWire } from "../../src/client/events.ts";
import { ParleyClient, ParleyError, RealtimeConnection } from "../../src/client/index.ts";
import type { RealtimeOptions } from "../../src/client/realtime.ts";
import type { MessageView } from "../../src/client/types.ts";
import { CLOSE, type Encoding, SUBPROTOCOL_MSGPACK } from "../../src/realtime/protocol.ts";
import { waitFor } from "../helpers.ts";
import {
  fakeConnection,
  fakeServer,
  holdReconnects,
  record,
  rejection,
  type Server,
  startServer,
} from "./helpers.ts";

const RESUME_MAX = 8;
let s: Server;
beforeAll(async () => {
  // Frame rate limits are the gateway's tests; here a writer may send as fast as acks come back.
  s = await startServer({
    RESUME_MAX: String(RESUME_MAX),
    WS_RATE_PER_SECOND: "5000",
    WS_RATE_BURST: "5000",
  });
});
afterAll(() => s.stop());

const ENCODINGS = ["msgpackr", "msgpack", "json"] as const;
const idOf = (c: ParleyClient) => c.session!.user.id;

async function pair(encoding: Encoding) {
  const [a, b] = [await s.client({ encoding }), await s.client({ encoding })];
  const conv = await a.rest.conversations.create({ conversation_type: "group", participant_ids: [idOf(b)] });
  await Promise.all([a.connect(), b.connect()]);
  return { a, b, conv: conv.id };
}

/** A connection of the client's session of its own, with no positions (unless `opts` gives some). */
function connectionOf(c: ParleyClient, opts: Partial<RealtimeOptions> = {}) {
  return new RealtimeConnection({
    baseUrl: s.baseUrl,
    userId: idOf(c),
    sessionId: c.session!.sessionId,
    token: () => c.session!.accessToken,
    rest: c.rest,
    positions: {},
    ...opts,
  });
}

/** Closes every socket of the user from the server side, as a restart would. */
function dropSockets(c: ParleyClient, code: number = CLOSE.restart) {
  for (const ws of [...s.h.deps.gateway.connections.ofUser(idOf(c))]) ws.close(code, "test");
}

/** Every change after `after`, as the server's REST catch-up lists them. */
async function changesAfter(c: ParleyClient, conv: string, after: number): Promise<MessageView[]> {
  const out: MessageView[] = [];
  for (;;) {
    const page = await c.rest.messages.events(conv, { after, limit: 3 });
    out.push(...page.items);
    const last = page.items.at(-1);
    if (!page.has_more || !last) return out;
    after = last.version_seq;
  }
}

/** No gap, no duplicate, in order, and the last event of each message shows it as it is now. */
async function expectGapFree(viewer: ParleyClient, conv: string, from: number, events: ConversationEvent[]) {
  const mine = events.filter((e) => e.conversation_id === conv && e.seq > from);
  const seqs = mine.map((e) => e.seq);
  expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
  const changes = await changesAfter(viewer, conv, from);
  for (const m of changes) expect(seqs).toContain(m.version_seq);
  const latest = new Map<string, MessageView>();
  for (const e of mine) if (e.message) latest.set(e.message.id, e.message);
  for (const m of changes) {
    expect(latest.get(m.id)).toMatchObject({
      content: m.content,
      deleted: m.deleted,
      reactions: m.reactions,
    });
  }
}

describe("send and receive", () => {
  for (const encoding of ENCODINGS) {
    it(`acks a sent message and delivers it to the other member as an event (${encoding})`, async () => {
      const { a, b, conv } = await pair(encoding);
      const events = record(b, "event");
      const ack = await a.realtime.send(conv, { content: `hello in ${encoding}` });
      expect(ack.client_msg_id).toMatch(/^[0-9a-f-]{36}$/);
      const event = await events.next((e) => e.kind === "message.created" && e.seq === ack.seq);
      // The short live form arrives filled out: the whole message, as REST gives it.
      const stored = (await a.rest.messages.page(conv)).items.find((m) => m.id === ack.message_id);
      expect(stored).toBeDefined();
      expect(event.message).toEqual({ ...(stored as MessageView), status: "sent" });
      expect(event.message).toMatchObject({ content: `hello in ${encoding}`, sender_id: idOf(a) });
      expect(a.realtime.positions[conv]).toBe(ack.seq);
      expect(b.realtime.positions[conv]).toBe(ack.seq);
      expect(a.realtime.encoding).toBe(encoding);
      expect(a.realtime.negotiatedEncoding).toBe(encoding);
    });
  }

  it("stops calling a handler once it is removed, whether added before connect() or before a new connection", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await a.rest.conversations.create({
      conversation_type: "group",
      participant_ids: [idOf(b)],
    });
    const calls: string[] = [];
    // Added before any connection exists, removed once one does.
    const offEarly = b.on("event", () => calls.push("early"));
    await Promise.all([a.connect(), b.connect()]);
    offEarly();
    const first = record(b, "event");
    const one = await a.realtime.send(conv.id, { content: "after the first removal" });
    await first.next((e) => e.kind === "message.created" && e.seq === one.seq);
    expect(calls).toEqual([]);
    // Added on one connection, removed after close() and connect() made another.
    const offLate = b.on("event", () => calls.push("late"));
    b.close();
    await b.connect();
    offLate();
    const events = record(b, "event");
    const ack = await a.realtime.send(conv.id, { content: "to the handlers still there" });
    await events.next((e) => e.kind === "message.created" && e.seq === ack.seq);
    expect(calls).toEqual([]);
  });

  it("speaks msgpackr records by default, and refuses an encoding it does not know", async () => {
    const a = await s.client();
    await a.connect();
    expect(a.realtime.negotiatedEncoding).toBe("msgpackr");
    a.close();
    const bad = { baseUrl: s.baseUrl, encoding: "cbor" as Encoding };
    expect(() => new ParleyClient(bad)).toThrow("expected msgpackr, msgpack, json; got cbor");
    expect(() => new RealtimeConnection({ ...bad, userId: "u", sessionId: "d", token: () => "t" })).toThrow(
      "expected msgpackr, msgpack, json",
    );
  });

  it("falls back to plain msgpack on a server without records, and writes plain frames to it", async () => {
    // A server that knows only parley.msgpack, as one from before records would answer.
    const plain = new Packr({ useRecords: false, mapsAsObjects: true });
    const offered: string[] = [];
    const got: unknown[] = [];
    const old = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req, server) {
        offered.push(...(req.headers.get("sec-websocket-protocol") ?? "").split(/,\s*/));
        const headers = { "sec-websocket-protocol": SUBPROTOCOL_MSGPACK };
        return server.upgrade(req, { headers }) ? undefined : new Response("no", { status: 400 });
      },
      websocket: {
        open(ws) {
          const hello = {
            type: "hello",
            user_id: "u",
            session_id: "d",
            server_time: "",
            heartbeat_interval: 30,
          };
          ws.send(plain.pack(hello));
        },
        message(ws, data) {
          const frame = plain.unpack(data as Buffer) as { type: string; ref: number; client_msg_id: string };
          got.push(frame);
          ws.send(
            plain.pack({
              type: "ack",
              ref: frame.ref,
              client_msg_id: frame.client_msg_id,
              message_id: "m",
              seq: 64,
            }),
          );
        },
      },
    });
    const rt = new RealtimeConnection({
      baseUrl: `http://127.0.0.1:${old.port}`,
      userId: "u",
      sessionId: "d",
      token: () => "t",
    });
    try {
      await rt.connect();
      expect(offered.slice(0, 2)).toEqual(["parley.msgpackr.1", "parley.msgpack"]);
      expect(rt.negotiatedEncoding).toBe("msgpack");
      // seq 64 is one byte in plain MessagePack and a structure in records: read plainly, it is 64.
      expect(await rt.send("c", { content: "plain", client_msg_id: "k" })).toEqual({
        client_msg_id: "k",
        message_id: "m",
        seq: 64,
      });
      expect(got[0]).toMatchObject({
        type: "message",
        conversation_id: "c",
        client_msg_id: "k",
        content: "plain",
      });
    } finally {
      rt.close();
      old.stop(true);
    }
  });

  it("acks a retried client_msg_id again without storing it twice", async () => {
    const { a, conv } = await pair("msgpack");
    const first = await a.realtime.send(conv, { content: "once", client_msg_id: "retry-1" });
    const second = await a.realtime.send(conv, { content: "once", client_msg_id: "retry-1" });
    expect(second.message_id).toBe(first.message_id);
    expect(
      (await a.rest.messages.page(conv)).items.filter((m) => m.client_msg_id === "retry-1"),
    ).toHaveLength(1);
  });

  it("rejects a send with the server's error code", async () => {
    const { a } = await pair("json");
    const err = await a.realtime.send("no-such-conversation", { content: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParleyError);
    expect(err).toMatchObject({ code: "not_found" });
    const empty = await a.realtime.send("x".repeat(65), { content: "x" }).catch((e: unknown) => e);
    expect(empty).toMatchObject({ code: "validation_failed" });
  });

  it("rejects a request the server never answers with a timeout", async () => {
    // A server that takes the frame and says nothing (Parley answers every frame that carries a ref).
    const fake = fakeServer({
      answer: (f) => (f.type === "ping" ? { type: "pong", ref: f.ref } : undefined),
    });
    const rt = fakeConnection(fake.baseUrl, { requestTimeoutMs: 50 });
    try {
      await rt.connect();
      const pending = (rt as unknown as { request(f: Record<string, unknown>): Promise<unknown> }).request({
        type: "typing_stop",
        conversation_id: "c",
      });
      expect(await pending.catch((e: unknown) => e)).toMatchObject({ code: "timeout" });
    } finally {
      rt.close();
      fake.stop();
    }
  });

  it("names the client_msg_id of a message that timed out, so that it can be sent again safely", async () => {
    // The server takes the first frame of each message (it may have stored it) and answers only a retry.
    const seen = new Set<unknown>();
    const fake = fakeServer({
      answer: (f) => {
        if (f.type !== "message" || !seen.has(f.client_msg_id)) return void seen.add(f.client_msg_id);
        return { type: "ack", ref: f.ref, client_msg_id: f.client_msg_id, message_id: "m1", seq: 1 };
      },
    });
    const rt = fakeConnection(fake.baseUrl, { requestTimeoutMs: 100 });
    try {
      await rt.connect();
      const err = await rejection(rt.send("c", { content: "hello once" }));
      expect(err.code).toBe("timeout");
      const id = err.details.client_msg_id;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const again = await rt.send("c", { content: "hello once", client_msg_id: id as string });
      expect(again).toEqual({ client_msg_id: id as string, message_id: "m1", seq: 1 });
      // Other requests have no such id.
      const typing = await rejection(
        (rt as unknown as { request(f: Record<string, unknown>): Promise<unknown> }).request({
          type: "typing_stop",
          conversation_id: "c",
        }),
      );
      expect(typing.code).toBe("timeout");
      expect(typing.details.client_msg_id).toBeUndefined();
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("heads frames", () => {
  it("resumes in one frame the conversations heads find it behind in, and no others", async () => {
    const ids = Array.from({ length: 60 }, (_, i) => `c-${i}`);
    const fake = fakeServer({
      // Every resume is answered at once: caught up where it asked from.
      answer: (f, ws) => {
        if (f.type !== "resume") return { type: "ok", ref: f.ref };
        for (const [id, seq] of Object.entries(f.positions as Record<string, number>))
          ws.send(JSON.stringify({ type: "resumed", ref: f.ref, conversation_id: id, seq }));
        return undefined;
      },
    });
    const rt = fakeConnection(fake.baseUrl, { positions: Object.fromEntries(ids.map((id) => [id, 3])) });
    try {
      await rt.connect();
      await waitFor(() => (fake.frames.some((f) => f.type === "resume") ? true : undefined));
      // The node lost Redis for a while: where each conversation stands, in two frames; 40 moved on.
      const [ws] = fake.sockets;
      const heads = ids.map((id, i) => [id, i < 40 ? 5 : 3] as const);
      for (const half of [heads.slice(0, 30), heads.slice(30)])
        ws?.send(JSON.stringify({ type: "heads", conversations: Object.fromEntries(half) }));
      await waitFor(() => (fake.frames.filter((f) => f.type === "resume").length === 2 ? true : undefined));
      await Bun.sleep(50);
      const resumes = fake.frames.filter((f) => f.type === "resume");
      expect(resumes).toHaveLength(2);
      expect(Object.keys(resumes[1]?.positions as object).sort()).toEqual(ids.slice(0, 40).sort());
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("in a runtime without a global WebSocket (Node.js 20)", () => {
  /** Runs `body` with globalThis.WebSocket gone, as on Node.js 20; put back whatever happens. */
  async function withoutGlobalWebSocket(body: (Socket: typeof WebSocket) => Promise<void>) {
    const Socket = globalThis.WebSocket;
    const g = globalThis as { WebSocket?: typeof WebSocket };
    delete g.WebSocket;
    try {
      await body(Socket);
    } finally {
      g.WebSocket = Socket;
    }
  }

  it("connects, sends and receives through the WebSocket it is given", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await a.rest.conversations.create({
      conversation_type: "group",
      participant_ids: [idOf(b)],
    });
    await b.connect();
    const got = record(b, "event");
    await withoutGlobalWebSocket(async (Socket) => {
      const rt = connectionOf(a, { WebSocket: Socket });
      try {
        await rt.connect();
        const ack = await rt.send(conv.id, { content: "from node 20" });
        expect((await got.next((e) => e.kind === "message.created")).seq).toBe(ack.seq);
        await rt.presence("away");
      } finally {
        rt.close();
      }
    });
  });

  it("without one given, fails to connect with bad_request saying what to pass", async () => {
    const a = await s.client();
    await withoutGlobalWebSocket(async () => {
      const err = await rejection(a.connect({ positions: {} }));
      expect(err.code).toBe("bad_request");
      expect(err.message).toContain("WebSocket option");
      expect(() => connectionOf(a)).toThrow("WebSocket option");
    });
  });
});

describe("frame helpers", () => {
  for (const encoding of ENCODINGS) {
    it(`relays typing, receipts, presence, key exchange and reactions (${encoding})`, async () => {
      const { a, b, conv } = await pair(encoding);
      const [typing, receipts, presence, keys, events] = [
        record(b, "typing"),
        record(a, "receipt"),
        record(b, "presence"),
        record(b, "key_exchange"),
        record(a, "event"),
      ];
      const ack = await a.realtime.send(conv, { content: "hi" });

      a.realtime.typing(conv, true);
      expect(await typing.next((t) => t.state === "start")).toMatchObject({
        conversation_id: conv,
        user_id: idOf(a),
      });
      a.realtime.typing(conv, false);
      await typing.next((t) => t.state === "stop");

      await b.realtime.ack(conv, ack.seq);
      await receipts.next((r) => r.kind === "delivered" && r.user_id === idOf(b) && r.seq === ack.seq);
      await b.realtime.read(conv, ack.seq);
      await receipts.next((r) => r.kind === "read" && r.user_id === idOf(b) && r.seq === ack.seq);

      await a.realtime.presence("away");
      await presence.next((p) => p.user_id === idOf(a) && p.status === "away");

      const payload = new Uint8Array([0, 1, 2, 250, 251, 255]);
      await a.realtime.keyExchange(idOf(b), payload);
      const key = await keys.next();
      expect(key.from_user_id).toBe(idOf(a));
      expect(key.from_device_id).toBe(a.session!.sessionId);
      expect(Array.from(key.payload)).toEqual(Array.from(payload));

      await b.realtime.react(ack.message_id, "👍");
      const reaction = await events.next((e) => e.kind === "reaction.added");
      expect(reaction.message?.reactions).toEqual([{ user_id: idOf(b), emoji: "👍" }]);
      await b.realtime.react(ack.message_id, "👍", "remove");
      await events.next((e) => e.kind === "reaction.removed");
    });
  }

  it("subscribes to a public channel and receives its announcements", async () => {
    const a = await s.client();
    await a.connect();
    const announcements = record(a, "announcement");
    await a.realtime.subscribe("news");
    const admin = await s.client();
    expect(await runCli(["admin", "grant", admin.session!.user.username], s.h.config, () => {})).toBe(0);
    await admin.rest.request("POST", "/api/announcements", { channel: "news", text: "hello, subscribers" });
    expect(await announcements.next()).toMatchObject({ channel: "news", text: "hello, subscribers" });
  });

  it("stays subscribed to its public channels across reconnects: each new socket subscribes again", async () => {
    const a = await s.client();
    await a.connect();
    const [announcements, opens] = [record(a, "announcement"), record(a, "open")];
    await a.realtime.subscribe("news");
    await a.realtime.subscribe("weather");
    const admin = await s.client();
    expect(await runCli(["admin", "grant", admin.session!.user.username], s.h.config, () => {})).toBe(0);
    const announce = (channel: string, text: string) =>
      admin.rest.request("POST", "/api/announcements", { channel, text });
    dropSockets(a);
    await opens.next((o) => o.reconnected);
    // The new socket is in both channels again once the server has taken the SDK's subscribe frames.
    await waitFor(() => {
      const sockets = [...s.h.deps.gateway.connections.ofUser(idOf(a))];
      const channels = sockets[0]?.data.channels;
      return sockets.length === 1 && channels?.has("news") && channels.has("weather") ? true : undefined;
    });
    await announce("news", "after the reconnect");
    await announce("weather", "rain");
    expect(await announcements.next((f) => f.text === "after the reconnect")).toMatchObject({
      channel: "news",
    });
    expect(await announcements.next((f) => f.text === "rain")).toMatchObject({ channel: "weather" });
  });

  it("unsubscribes from a public channel, on this socket and the ones after it", async () => {
    const a = await s.client();
    await a.connect();
    const [announcements, opens] = [record(a, "announcement"), record(a, "open")];
    await a.realtime.subscribe("sports");
    await a.realtime.subscribe("music");
    const admin = await s.client();
    expect(await runCli(["admin", "grant", admin.session!.user.username], s.h.config, () => {})).toBe(0);
    const announce = (channel: string, text: string) =>
      admin.rest.request("POST", "/api/announcements", { channel, text });
    await a.realtime.unsubscribe("sports");
    await announce("sports", "goal");
    await announce("music", "encore");
    expect(await announcements.next()).toMatchObject({ channel: "music", text: "encore" });
    dropSockets(a);
    await opens.next((o) => o.reconnected);
    await a.realtime.subscribe("music"); // answered once the socket has taken what it sent at its hello
    const sockets = [...s.h.deps.gateway.connections.ofUser(idOf(a))];
    expect(sockets).toHaveLength(1);
    expect([...(sockets[0]?.data.channels ?? [])]).toEqual(["music"]);
  });

  it("drops a channel the server refuses at a reconnect, told as an error event, and keeps the others", async () => {
    const a = await s.client();
    await a.connect();
    const [errors, opens] = [record(a, "error"), record(a, "open")];
    await a.realtime.subscribe("first");
    await a.realtime.subscribe("second");
    const config = s.h.deps.config as { WS_MAX_CHANNELS: number };
    const max = config.WS_MAX_CHANNELS;
    config.WS_MAX_CHANNELS = 1;
    try {
      dropSockets(a);
      await opens.next((o) => o.reconnected);
      expect(await errors.next()).toMatchObject({ code: "validation_failed" });
    } finally {
      config.WS_MAX_CHANNELS = max;
    }
    const socket = () => {
      const sockets = [...s.h.deps.gateway.connections.ofUser(idOf(a))];
      expect(sockets).toHaveLength(1);
      return sockets[0]!;
    };
    // Answered after the frames the socket sent at its hello: the server has taken them by then.
    await a.realtime.subscribe("first");
    const refused = socket();
    expect([...(refused.data.channels ?? [])]).toEqual(["first"]);
    // The refused one is not asked for again by the sockets after.
    dropSockets(a);
    await opens.count(2, (o) => o.reconnected);
    await a.realtime.subscribe("first");
    expect(socket()).not.toBe(refused);
    expect([...(socket().data.channels ?? [])]).toEqual(["first"]);
    expect(errors.items).toHaveLength(1);
  });
});

describe("reconnect and resume", () => {
  for (const encoding of ENCODINGS) {
    it(`replays exactly the changes made while away, in order, after a 4000 close (${encoding})`, async () => {
      const { a, b, conv } = await pair(encoding);
      const seen = record(b, "event");
      const first = await a.realtime.send(conv, { content: "before" });
      await seen.next((e) => e.seq === first.seq);
      // A connection of b's own whose token waits for a gate: it stays away until the changes are made.
      let open: () => void = () => {};
      let gate = new Promise<void>((r) => {
        open = r;
      });
      b.close();
      const rt = new RealtimeConnection({
        baseUrl: s.baseUrl,
        userId: idOf(b),
        sessionId: b.session!.sessionId,
        encoding,
        rest: b.rest,
        positions: { [conv]: first.seq },
        backoff: { minMs: 1, maxMs: 5 },
        token: async () => {
          await gate;
          return b.session!.accessToken;
        },
      });
      const [events, opens, closes, resumed] = [
        record(rt, "event"),
        record(rt, "open"),
        record(rt, "close"),
        record(rt, "resumed"),
      ];
      open();
      await rt.connect();
      await resumed.next((r) => r.conversation_id === conv);
      gate = new Promise<void>((r) => {
        open = r;
      });
      const from = rt.positions[conv]!;
      expect(from).toBe(first.seq);

      dropSockets(b);
      expect(await closes.next()).toMatchObject({ code: CLOSE.restart, reconnecting: true });
      const m2 = await a.rest.messages.send(conv, { content: "two" });
      const m3 = await a.rest.messages.send(conv, { content: "three" });
      await a.rest.messages.edit(first.message_id, "before, edited");
      await a.rest.messages.react(m2.id, "🎉");
      await a.rest.messages.delete(m3.id);
      await a.realtime.send(conv, { content: "four" });
      const expected = await changesAfter(a, conv, from);
      open();

      await opens.next((o) => o.reconnected);
      await resumed.count(2, (r) => r.conversation_id === conv);
      const replayed = events.items.filter((e) => e.seq > from);
      expect(replayed.map((e) => e.seq)).toEqual(expected.map((m) => m.version_seq));
      expect(replayed.map((e) => [e.message?.id, e.message?.content, e.message?.deleted])).toEqual(
        expected.map((m) => [m.id, m.content, m.deleted]),
      );
      expect(replayed.find((e) => e.message?.id === m2.id)?.message?.reactions).toEqual([
        { user_id: idOf(a), emoji: "🎉" },
      ]);
      expect(rt.positions[conv]).toBe(expected.at(-1)!.version_seq);
      rt.close();
    });
  }

  it("stays gap-free and duplicate-free when changes keep coming across the reconnect", async () => {
    const { a, b, conv } = await pair("msgpack");
    const events = record(b, "event");
    const opens = record(b, "open");
    const first = await a.realtime.send(conv, { content: "m0" });
    await events.next((e) => e.seq === first.seq);
    let stop = false;
    const writer = (async () => {
      // Sends a (not b) makes; b's drop does not touch them.
      for (let i = 1; !stop && i < 400; i++) {
        const m = await a.realtime.send(conv, { content: `m${i}` });
        if (i % 3 === 0) await a.rest.messages.edit(m.message_id, `m${i} edited`);
        if (i % 5 === 0) await a.realtime.react(m.message_id, "👍");
      }
    })();
    await events.count(5, (e) => e.seq > first.seq);
    dropSockets(b);
    await opens.next((o) => o.reconnected);
    const atReconnect = events.items.length;
    await events.count(atReconnect + 10);
    stop = true;
    await writer;
    const last = (await a.rest.conversations.get(conv)).last_seq;
    await waitFor(() => ((b.realtime.positions[conv] ?? 0) >= last ? true : undefined));
    await expectGapFree(b, conv, first.seq - 1, events.items);
  });

  it("fills a hole in the live events (a change still on its way from another node) in order, once", async () => {
    const { a, b, conv } = await pair("msgpack");
    const events = record(b, "event");
    const first = await a.realtime.send(conv, { content: "before" });
    await events.next((e) => e.seq === first.seq);
    // The next change is stored but its event is held back, as one published by a slower node would be.
    const hub = s.h.deps.hub;
    const publish = hub.publish.bind(hub);
    const late: Parameters<typeof publish>[0][] = [];
    hub.publish = (event) => void late.push(event);
    let lateSeq: number;
    try {
      lateSeq = (await a.rest.messages.send(conv, { content: "late" })).seq;
    } finally {
      hub.publish = publish;
    }
    expect(late).toHaveLength(1);
    const onTime = await a.realtime.send(conv, { content: "on time" });
    expect(onTime.seq).toBe(lateSeq + 1);
    await events.next((e) => e.seq === onTime.seq);
    // Now the held event arrives after all: it must not come out a second time.
    publish(late[0] as Parameters<typeof publish>[0]);
    await Bun.sleep(50);
    const after = events.items.filter((e) => e.conversation_id === conv && e.seq > first.seq);
    expect(after.map((e) => [e.seq, e.message?.content])).toEqual([
      [lateSeq, "late"],
      [onTime.seq, "on time"],
    ]);
    expect(b.realtime.positions[conv]).toBe(onTime.seq);
  });

  it("catches up over REST when the server answers resync, then goes on live", async () => {
    const { a, b, conv } = await pair("json");
    const events = record(b, "event");
    const first = await a.realtime.send(conv, { content: "start" });
    const resyncs = record(b, "resync");
    await events.next((e) => e.seq === first.seq);
    const { open } = holdReconnects(b);
    dropSockets(b);
    const sent: string[] = [];
    for (let i = 0; i < RESUME_MAX + 4; i++)
      sent.push((await a.rest.messages.send(conv, { content: `c${i}` })).id);
    await a.rest.messages.edit(sent[0]!, "c0 edited");
    await a.rest.messages.delete(sent[1]!);
    const expected = await changesAfter(a, conv, first.seq);
    open();
    await resyncs.next((r) => r.conversation_id === conv);
    const target = expected.at(-1)!.version_seq;
    await events.next((e) => e.seq === target);
    const caught = events.items.filter((e) => e.seq > first.seq);
    expect(caught.map((e) => e.seq)).toEqual(expected.map((m) => m.version_seq));
    expect(caught.every((e) => e.replayed)).toBe(true);

    const live = await a.realtime.send(conv, { content: "live again" });
    expect((await events.next((e) => e.seq === live.seq)).replayed).toBeUndefined();
  });

  it("tells the app once of each conversation the user is no longer in (gone), removed or deleted, while away or live", async () => {
    const { a, b, conv } = await pair("msgpack");
    const group = async () =>
      (await a.rest.conversations.create({ conversation_type: "group", participant_ids: [idOf(b)] })).id;
    const [removed, deleted, live] = [await group(), await group(), await group()];
    const [events, gone, resumed] = [record(b, "event"), record(b, "gone"), record(b, "resumed")];
    for (const id of [removed, deleted, live]) {
      const sent = await a.realtime.send(id, { content: "hello" });
      await events.next((e) => e.conversation_id === id && e.seq === sent.seq);
    }
    const { open } = holdReconnects(b);
    dropSockets(b);
    await a.rest.conversations.removeParticipant(removed, idOf(b));
    await a.rest.conversations.delete(deleted);
    open();
    // No event of theirs comes: the resume finds b no longer in them.
    await gone.count(2);
    await resumed.next((r) => r.conversation_id === conv);
    expect(gone.items.map((g) => g.conversation_id).sort()).toEqual([removed, deleted].sort());
    await a.rest.conversations.delete(live);
    await events.next((e) => e.kind === "conversation.deleted" && e.conversation_id === live);
    expect(await gone.next((g) => g.conversation_id === live)).toEqual({ conversation_id: live });
    // Told once: the live deletion, not again by anything after it.
    const later = await a.realtime.send(conv, { content: "after" });
    await events.next((e) => e.seq === later.seq && e.conversation_id === conv);
    expect(gone.items).toHaveLength(3);
  });

  it("forgets a conversation it was removed from while away, and resumes the others", async () => {
    const { a, b, conv } = await pair("msgpack");
    const left = (
      await a.rest.conversations.create({ conversation_type: "group", participant_ids: [idOf(b)] })
    ).id;
    const events = record(b, "event");
    const [stays, goes] = [
      await a.realtime.send(conv, { content: "here" }),
      await a.realtime.send(left, { content: "gone" }),
    ];
    await events.next((e) => e.conversation_id === conv && e.seq === stays.seq);
    await events.next((e) => e.conversation_id === left && e.seq === goes.seq);
    const { open } = holdReconnects(b);
    const [resumed, errors] = [record(b, "resumed"), record(b, "error")];
    dropSockets(b);
    await a.rest.conversations.removeParticipant(left, idOf(b));
    open();
    // The server names the conversation b is no longer in; the one it is in resumes as ever.
    await resumed.next((r) => r.conversation_id === conv);
    await waitFor(() => (b.realtime.positions[left] === undefined ? true : undefined));
    expect(b.realtime.positions[conv]).toBe(stays.seq);
    expect(errors.items).toEqual([]);
    const live = await a.realtime.send(conv, { content: "still here" });
    expect((await events.next((e) => e.seq === live.seq)).message?.content).toBe("still here");
  });

  it("catches up, from its start, a conversation created with it as a member while away", async () => {
    const { a, b } = await pair("msgpack");
    const events = record(b, "event");
    const { open } = holdReconnects(b);
    const closes = record(b, "close");
    dropSockets(b);
    await closes.next();
    const added = (
      await a.rest.conversations.create({ conversation_type: "group", participant_ids: [idOf(b)] })
    ).id;
    for (let i = 0; i < 3; i++) await a.rest.messages.send(added, { content: `while away ${i}` });
    const expected = await changesAfter(a, added, 0);
    open();
    // No live event comes in it: the reconnect finds it in the conversation list.
    await events.next((e) => e.conversation_id === added && e.seq === expected.at(-1)!.version_seq);
    const caught = events.items.filter((e) => e.conversation_id === added);
    expect(caught.map((e) => [e.seq, e.message?.content])).toEqual(
      expected.map((m) => [m.version_seq, m.content]),
    );
    const live = await a.realtime.send(added, { content: "after b is back" });
    expect((await events.next((e) => e.seq === live.seq && e.conversation_id === added)).replayed).toBe(
      undefined,
    );
    expect(b.realtime.positions[added]).toBe(live.seq);
  });

  it("delivers a live event in a conversation it does not know only after the changes before it", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = (
      await a.rest.conversations.create({ conversation_type: "group", participant_ids: [idOf(b)] })
    ).id;
    await a.rest.messages.send(conv, { content: "one" });
    await a.rest.messages.send(conv, { content: "two" });
    await a.connect();
    // A connection that was given no position for it (as for a conversation b joined while it opened).
    const rt = connectionOf(b);
    try {
      const events = record(rt, "event");
      await rt.connect();
      const three = await a.realtime.send(conv, { content: "three" });
      await events.next((e) => e.conversation_id === conv && e.seq === three.seq);
      const seen = events.items.filter((e) => e.conversation_id === conv);
      expect(seen.map((e) => e.message?.content)).toEqual(["one", "two", "three"]);
      expect(rt.positions[conv]).toBe(three.seq);
    } finally {
      rt.close();
    }
  });

  it("moves a position past the end of the log back to it, so that the next changes are delivered", async () => {
    const { a, b, conv } = await pair("msgpackr");
    await a.realtime.send(conv, { content: "one" });
    // Positions kept from before the server's store went back to an older backup, say.
    const rt = connectionOf(b, { positions: { [conv]: 50 } });
    try {
      const [events, resumed] = [record(rt, "event"), record(rt, "resumed")];
      await rt.connect();
      expect(await resumed.next((r) => r.conversation_id === conv)).toEqual({
        conversation_id: conv,
        seq: 1,
      });
      expect(rt.positions[conv]).toBe(1);
      const ack = await a.realtime.send(conv, { content: "two" });
      const live = await events.next((e) => e.kind === "message.created");
      expect(live).toMatchObject({ seq: ack.seq, message: { content: "two" } });
    } finally {
      rt.close();
    }
  });

  it("refuses positions the server would refuse, at once, rather than reconnecting to send them again and again", async () => {
    const { b, conv } = await pair("msgpackr");
    for (const bad of [-1, 1.5, Number.NaN]) {
      let rt: RealtimeConnection | undefined;
      const made = () => {
        rt = connectionOf(b, { positions: { [conv]: bad } });
        return rt;
      };
      try {
        expect(made).toThrow(TypeError);
      } finally {
        rt?.close();
      }
    }
  });

  it("reconnects and resumes again when a resume is refused as a whole", async () => {
    const { a, b, conv } = await pair("msgpack");
    const events = record(b, "event");
    const first = await a.realtime.send(conv, { content: "before" });
    await events.next((e) => e.seq === first.seq);
    const [opens, errors] = [record(b, "open"), record(b, "error")];
    // The next catch-up read fails once, as a store that is briefly out of reach would: `internal`.
    const messages = s.h.deps.store.messages;
    const read = messages.events;
    messages.events = async () => {
      messages.events = read;
      throw new Error("store out of reach");
    };
    dropSockets(b);
    const missed = await a.rest.messages.send(conv, { content: "while away" });
    expect(await errors.next()).toMatchObject({ code: "internal" });
    expect((await events.next((e) => e.seq === missed.seq)).message?.content).toBe("while away");
    expect(opens.items.filter((o) => o.reconnected).length).toBe(2);
  });

  it("does not reconnect after a terminal close (session revoked)", async () => {
    const { b } = await pair("msgpack");
    const closes = record(b, "close");
    const opens = record(b, "open");
    await b.rest.signout();
    expect(await closes.next()).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    expect(b.realtime.connected).toBe(false);
    expect(opens.items).toHaveLength(0);
  });

  it("sends a message queued while away once the connection is back", async () => {
    const { a, b, conv } = await pair("msgpack");
    const events = record(a, "event");
    const closes = record(b, "close");
    const opens = record(b, "open");
    dropSockets(b);
    await closes.next();
    const ack = await b.realtime.send(conv, { content: "sent while away" });
    await opens.next((o) => o.reconnected);
    expect((await events.next((e) => e.seq === ack.seq)).message?.content).toBe("sent while away");
  });
});

describe("joining a conversation", () => {
  /** A group of a's alone, with some history already. */
  async function groupWithHistory(a: ParleyClient) {
    const conv = (await a.rest.conversations.create({ conversation_type: "group", participant_ids: [] })).id;
    for (let i = 0; i < 3; i++) await a.rest.messages.send(conv, { content: `history ${i}` });
    return conv;
  }

  /** a (connected) adds b, not connected, to a group with history; the seq of the add. */
  async function addedWhileOffline() {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await groupWithHistory(a);
    await a.connect();
    await a.rest.conversations.addParticipant(conv, idOf(b));
    return { a, b, conv, addSeq: (await a.rest.conversations.get(conv)).last_seq };
  }

  /** The content of the system message that records b's add. */
  const addOf = (b: ParleyClient) =>
    JSON.stringify({ event: "participant.added", user_id: idOf(b), role: "member" });

  it("starts a conversation the user is added to while connected at the add: its history is not replayed as live events", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await groupWithHistory(a);
    await b.connect();
    const events = record(b, "event");
    await a.rest.conversations.addParticipant(conv, idOf(b));
    const added = await events.next((e) => e.conversation_id === conv && e.kind === "participant.added");
    expect(added).toMatchObject({ user_id: idOf(b), seq: 4 });
    const after = await a.rest.messages.send(conv, { content: "after the add" });
    await events.next((e) => e.conversation_id === conv && e.seq === after.seq);
    const seen = events.items.filter((e) => e.conversation_id === conv);
    expect(seen.map((e) => [e.seq, e.kind, e.replayed])).toEqual([
      [added.seq, "participant.added", undefined],
      [after.seq, "message.created", undefined],
    ]);
    expect(b.realtime.positions[conv]).toBe(after.seq);
  });

  it("starts there from the event that added it, with no REST call: a connection without a REST client too", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await groupWithHistory(a);
    const rt = connectionOf(b, { rest: undefined });
    try {
      const events = record(rt, "event");
      await rt.connect();
      await a.rest.conversations.addParticipant(conv, idOf(b));
      const after = await a.rest.messages.send(conv, { content: "after the add" });
      await events.next((e) => e.conversation_id === conv && e.seq === after.seq);
      const seen = events.items.filter((e) => e.conversation_id === conv);
      expect(seen.map((e) => [e.seq, e.kind])).toEqual([
        [after.seq - 1, "participant.added"],
        [after.seq, "message.created"],
      ]);
    } finally {
      rt.close();
    }
  });

  it("starts a conversation joined while the socket was opening at the add, with what came after it", async () => {
    const { a, b, conv, addSeq } = await addedWhileOffline();
    const missed = await a.realtime.send(conv, { content: "before b's socket is open" });
    // A connection given no position for it (its list was made before the add): it never gets the add's
    // event, and the first event it sees in the conversation comes after another it missed.
    const rt = connectionOf(b);
    try {
      const events = record(rt, "event");
      await rt.connect();
      const live = await a.realtime.send(conv, { content: "live" });
      await events.next((e) => e.conversation_id === conv && e.seq === live.seq);
      const seen = events.items.filter((e) => e.conversation_id === conv);
      // Caught up from the add, and the live event that showed the conversation to it, live.
      expect(seen.map((e) => [e.seq, e.message?.message_type, e.message?.content, e.replayed])).toEqual([
        [addSeq, "system", addOf(b), true],
        [missed.seq, "text", "before b's socket is open", true],
        [live.seq, "text", "live", undefined],
      ]);
      expect(rt.positions[conv]).toBe(live.seq);
    } finally {
      rt.close();
    }
  });

  it("reconnects to try again when it cannot ask where it joined, and then starts at the add", async () => {
    const { a, b, conv, addSeq } = await addedWhileOffline();
    // The first time it asks, the answer is lost, as on a link that fails for a moment.
    const get = b.rest.conversations.get;
    b.rest.conversations.get = async () => {
      b.rest.conversations.get = get;
      throw new ParleyError("network", "lost");
    };
    const rt = connectionOf(b, { backoff: { minMs: 10, maxMs: 20 } });
    try {
      const [events, errors, opens] = [record(rt, "event"), record(rt, "error"), record(rt, "open")];
      await rt.connect();
      const live = await a.realtime.send(conv, { content: "live" });
      expect(await errors.next()).toMatchObject({ code: "network" });
      await opens.next((o) => o.reconnected);
      await events.next((e) => e.conversation_id === conv && e.seq === live.seq);
      const seen = events.items.filter((e) => e.conversation_id === conv);
      expect(seen.map((e) => [e.seq, e.message?.message_type])).toEqual([
        [addSeq, "system"],
        [live.seq, "text"],
      ]);
    } finally {
      rt.close();
    }
  });

  it("catches up a conversation it was added to while away from the add, not from its start", async () => {
    const [a, b] = [await s.client(), await s.client({ backoff: { minMs: 10, maxMs: 20 } })];
    const conv = await groupWithHistory(a);
    await b.connect();
    const [events, closes] = [record(b, "event"), record(b, "close")];
    const held = holdReconnects(b);
    dropSockets(b);
    await closes.next();
    await a.rest.conversations.addParticipant(conv, idOf(b));
    const addSeq = (await a.rest.conversations.get(conv)).last_seq;
    const away = await a.rest.messages.send(conv, { content: "while away" });
    held.open();
    // No live event comes in it: the reconnect finds it in the conversation list.
    await events.next((e) => e.conversation_id === conv && e.seq === away.seq);
    const caught = events.items.filter((e) => e.conversation_id === conv);
    expect(caught.map((e) => [e.seq, e.message?.message_type, e.message?.content])).toEqual([
      [addSeq, "system", addOf(b)],
      [away.seq, "text", "while away"],
    ]);
  });
});

describe("a channel's reader", () => {
  /** A channel of a's with some history and `readers`; its id and its last seq. */
  async function channelWithHistory(a: ParleyClient, readers: ParleyClient[] = []) {
    const conv = (
      await a.rest.conversations.create({ conversation_type: "channel", participant_ids: readers.map(idOf) })
    ).id;
    for (let i = 0; i < 3; i++) await a.rest.messages.send(conv, { content: `history ${i}` });
    return { conv, last: (await a.rest.conversations.get(conv)).last_seq };
  }

  it("starts a channel it is added to while connected where it joined, from an event that takes no seq", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const { conv, last } = await channelWithHistory(a);
    await b.connect();
    const events = record(b, "event");
    await a.rest.conversations.addParticipant(conv, idOf(b));
    const added = await events.next((e) => e.conversation_id === conv && e.kind === "participant.added");
    expect(added).toMatchObject({ user_id: idOf(b), seq: 0, joined_seq: last });
    expect(b.realtime.positions[conv]).toBe(last);
    const after = await a.rest.messages.send(conv, { content: "after the add" });
    expect(after.seq).toBe(last + 1);
    await events.next((e) => e.conversation_id === conv && e.seq === after.seq);
    const seen = events.items.filter((e) => e.conversation_id === conv);
    expect(seen.map((e) => [e.seq, e.kind, e.replayed])).toEqual([
      [0, "participant.added", undefined],
      [after.seq, "message.created", undefined],
    ]);
    expect(b.realtime.positions[conv]).toBe(after.seq);
  });

  it("catches up a channel it was added to while away from where it joined, with nothing before", async () => {
    const [a, b] = [await s.client(), await s.client({ backoff: { minMs: 10, maxMs: 20 } })];
    const { conv, last } = await channelWithHistory(a);
    await b.connect();
    const [events, closes] = [record(b, "event"), record(b, "close")];
    const held = holdReconnects(b);
    dropSockets(b);
    await closes.next();
    await a.rest.conversations.addParticipant(conv, idOf(b));
    const away = await a.rest.messages.send(conv, { content: "while away" });
    held.open();
    await events.next((e) => e.conversation_id === conv && e.seq === away.seq);
    const caught = events.items.filter((e) => e.conversation_id === conv);
    expect(caught.map((e) => [e.seq, e.message?.content])).toEqual([[last + 1, "while away"]]);
    expect(b.realtime.positions[conv]).toBe(away.seq);
  });

  it("is told once that it is gone when removed, and gets nothing of the channel after", async () => {
    const [a, b, c] = [await s.client(), await s.client(), await s.client()];
    const { conv, last } = await channelWithHistory(a, [b, c]);
    await Promise.all([b.connect(), c.connect()]);
    const [events, gone, others] = [record(b, "event"), record(b, "gone"), record(c, "event")];
    const first = await a.rest.messages.send(conv, { content: "first" });
    await events.next((e) => e.conversation_id === conv && e.seq === first.seq);
    await a.rest.conversations.removeParticipant(conv, idOf(b));
    expect(await gone.next()).toEqual({ conversation_id: conv });
    expect(events.items.filter((e) => e.conversation_id === conv).map((e) => [e.kind, e.seq])).toEqual([
      ["message.created", first.seq],
      ["participant.removed", 0],
    ]);
    expect(b.realtime.positions[conv]).toBeUndefined();
    const later = await a.rest.messages.send(conv, { content: "later" });
    expect(later.seq).toBe(last + 2);
    await others.next((e) => e.conversation_id === conv && e.seq === later.seq);
    // The other reader heard nothing of b's leaving.
    expect(others.items.filter((e) => e.conversation_id === conv).map((e) => e.seq)).toEqual([
      first.seq,
      later.seq,
    ]);
    await Bun.sleep(30);
    expect(events.items.filter((e) => e.seq === later.seq && e.conversation_id === conv)).toEqual([]);
    expect(gone.items).toHaveLength(1);
  });
});

describe("connect() after close()", () => {
  it("catches up a conversation the user was added to while closed from the add, as a reconnect does", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await a.rest.conversations.create({ conversation_type: "group", participant_ids: [] });
    await a.rest.messages.send(conv.id, { content: "history" });
    const rt = connectionOf(b);
    try {
      const events = record(rt, "event");
      await rt.connect();
      rt.close();
      await a.rest.conversations.addParticipant(conv.id, idOf(b));
      const addSeq = (await a.rest.conversations.get(conv.id)).last_seq;
      const away = await a.rest.messages.send(conv.id, { content: "while closed" });
      await rt.connect();
      // No live event comes in it: the connect() finds it in the conversation list.
      await events.next((e) => e.conversation_id === conv.id && e.seq === away.seq);
      expect(events.items.map((e) => [e.seq, e.message?.message_type])).toEqual([
        [addSeq, "system"],
        [away.seq, "text"],
      ]);
    } finally {
      rt.close();
    }
  });
});

describe("heartbeat", () => {
  it("pings every heartbeat_interval from hello, so an idle client is not closed as silent", async () => {
    const hb = await startServer({ WS_HEARTBEAT_INTERVAL: "1", WS_CONNECTION_TIMEOUT: "2" });
    try {
      const c = await hb.client();
      const closes = record(c, "close");
      const hello = await c.connect();
      expect(hello.heartbeat_interval).toBe(1);
      const socket = () => [...hb.h.deps.gateway.connections.ofUser(idOf(c))][0];
      const openedAt = Date.now();
      // The server saw a frame well after the last one the client had to send: a ping (one is due every
      // second; a client that stops pinging is closed as silent after 2 s, and then none comes).
      await waitFor(() => ((socket()?.data.lastSeen ?? 0) > openedAt + 2500 ? true : undefined), 8000);
      expect(closes.items).toHaveLength(0);
    } finally {
      await hb.stop();
    }
  }, 15_000);
});

describe("replayed events", () => {
  it("marks the changes a reconnect's resume brings as replayed, and the live ones after it not", async () => {
    const [a, b] = [await s.client({ encoding: "msgpack" }), await s.client({ encoding: "msgpack" })];
    const { id: conv } = await a.rest.conversations.create({
      conversation_type: "group",
      participant_ids: [idOf(b)],
    });
    const [events, closes, resumed] = [record(b, "event"), record(b, "close"), record(b, "resumed")];
    await Promise.all([a.connect(), b.connect()]);
    // B's connect resumes the conversation from where it is: a change sent before that resume is answered
    // may come as part of its replay, and rightly be marked so. The first one is sent after it.
    await resumed.next((r) => r.conversation_id === conv);
    const first = await a.realtime.send(conv, { content: "before" });
    await events.next((e) => e.seq === first.seq);
    const held = holdReconnects(b);
    dropSockets(b);
    await closes.next();
    const away: number[] = [];
    for (let i = 0; i < 3; i++) away.push((await a.rest.messages.send(conv, { content: `away ${i}` })).seq);
    held.open();
    await resumed.next((r) => r.conversation_id === conv && r.seq === away.at(-1));
    const live = await a.realtime.send(conv, { content: "live" });
    await events.next((e) => e.seq === live.seq);
    expect(events.items.map((e) => [e.seq, e.replayed])).toEqual([
      [first.seq, undefined],
      ...away.map((seq) => [seq, true]),
      [live.seq, undefined],
    ]);
  });

  /** A new message's event as it comes live (the short form), and as a replay brings it (whole). */
  const live = (seq: number) => ({
    type: "event",
    kind: "message.created",
    conversation_id: "c",
    seq,
    message: { id: `m${seq}`, sender_id: "x", content: `m${seq}`, created_at: "" },
  });
  const replay = (seq: number) => fromWire(live(seq) as unknown as ConversationEvent);

  it("marks only what the resume covers: not a live change that came before it was asked for, nor one past its end", async () => {
    // The server's answers, by resume: live events published while it read the store come before the
    // replay, and one made after that read is past the replay's end.
    const answers: unknown[][] = [
      [live(5), replay(3), replay(4), { type: "resumed", conversation_id: "c", seq: 4 }],
      [replay(6), replay(7), { type: "resumed", conversation_id: "c", seq: 7 }],
    ];
    const fake = fakeServer({
      answer: (f, ws) => {
        if (f.type !== "resume")
          return { type: f.type === "ping" ? "pong" : "ok", ref: f.ref, server_time: "" };
        for (const frame of answers.shift() ?? [])
          ws.send(JSON.stringify({ ...(frame as object), ref: f.ref }));
      },
    });
    const rt = fakeConnection(fake.baseUrl, { positions: { c: 2 } });
    try {
      const events = record(rt, "event");
      await rt.connect();
      await events.next((e) => e.seq === 5);
      // A live change that skips seq 6 starts a resume of its own, which replays 6 and 7 again.
      for (const ws of fake.sockets) ws.send(JSON.stringify(live(7)));
      await events.next((e) => e.seq === 7);
      expect(events.items.map((e) => [e.seq, e.replayed])).toEqual([
        [3, true],
        [4, true],
        [5, undefined],
        [6, true],
        [7, undefined],
      ]);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});
