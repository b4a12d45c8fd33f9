// A large catch-up is paced by its socket's drain: a client that reads, however slowly, gets a backlog many
// times WS_BACKPRESSURE_LIMIT without being closed as a slow consumer, and one that stops reading is closed
// all the same, and nothing of it is held after.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { unpack } from "msgpackr";
import { MemoryBroker } from "../../src/broker/memory.ts";
import { Catchup } from "../../src/client/catchup.ts";
import type { ConversationEvent } from "../../src/client/events.ts";
import { Connections, type Socket } from "../../src/realtime/connections.ts";
import { Dispatcher } from "../../src/realtime/dispatch.ts";
import { Fanout } from "../../src/realtime/fanout.ts";
import { leastBackpressureLimit } from "../../src/realtime/frame-bound.ts";
import { Pacer } from "../../src/realtime/pacing.ts";
import { Presence } from "../../src/realtime/presence.ts";
import { call, group, type Harness, harness, signup, waitFor } from "../helpers.ts";
import {
  closeCode,
  closeReason,
  decodeFrame,
  isBinary,
  isClose,
  type RawClient,
  rawClient,
} from "./raw-client.ts";
import type { Frame } from "./ws-client.ts";

/** A change's frame (48 KB): about a fifteenth of the limit, the least this message length takes (config.ts). */
const CONTENT = 48_000;
// One reaction a message: the limit is the content's (these messages are reacted to by no one).
const LIMIT = leastBackpressureLimit({
  MAX_MESSAGE_LENGTH: CONTENT + 100,
  MAX_REACTIONS_PER_MESSAGE: 1,
  MAX_GROUP_MEMBERS: 1024,
});

let h: Harness;
let port: number;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
/** Three groups of 60 big messages (each ~4 times the limit), and one of 160 (~10 times). */
let several: string[];
let big: string;
const cleanups: (() => void)[] = [];

async function post(conversation: string, text: string) {
  const res = await call(h.app, "POST", `/api/conversations/${conversation}/messages`, {
    token: alice.token,
    body: { content: `${text} ${"x".repeat(CONTENT)}` },
  });
  expect(res.status).toBe(201);
}

beforeAll(async () => {
  h = await harness({
    WS_BACKPRESSURE_LIMIT: String(LIMIT),
    WS_DRAIN_TIMEOUT: "1",
    MAX_MESSAGE_LENGTH: String(CONTENT + 100),
    MAX_REACTIONS_PER_MESSAGE: "1",
    RATE_LIMIT_PER_MINUTE: "100000",
  });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  port = h.app.server?.port ?? 0;
  [alice, bob] = [await signup(h.app), await signup(h.app)];
  several = [];
  for (let c = 0; c < 3; c++) {
    const id = await group(h.app, alice, [bob]);
    for (let i = 1; i <= 60; i++) await post(id, `${c}.${i}`);
    several.push(id);
  }
  big = await group(h.app, alice, [bob]);
  for (let i = 1; i <= 160; i++) await post(big, `big.${i}`);
}, 60_000);
afterAll(async () => {
  for (const clean of cleanups.splice(0)) clean();
  await h.app.stop(true);
  await h.close();
});

async function bobSocket(): Promise<RawClient> {
  const client = await rawClient(port, `/ws/${bob.id}/${bob.session_id}`, bob.token);
  cleanups.push(() => client.close());
  expect(decodeFrame(await client.until(isBinary))).toMatchObject({ type: "hello" });
  return client;
}

const frames = (client: RawClient): Frame[] => client.frames.filter(isBinary).map(decodeFrame);
const connected = () => h.deps.gateway.connections.ofSession(bob.session_id).size > 0;
const pauses = () => h.deps.metrics.ws.resumePauses.get();

/** The socket still answers a ping after all it was sent, without having been closed. */
async function expectOpen(client: RawClient) {
  const ref = `alive-${client.frames.length}`;
  client.send({ type: "ping", ref });
  await client.until((f) => isClose(f) || (isBinary(f) && decodeFrame(f).ref === ref), 10_000);
  expect(client.frames.some(isClose)).toBe(false);
  expect(connected()).toBe(true);
}

/** The resumes under way on the node, by state, from the metrics. */
function resumes(): { sending: number; paced: number } {
  const text = h.deps.metrics.registry.render();
  const value = (state: string) =>
    Number(text.match(new RegExp(`^parley_ws_resumes\\{state="${state}"\\} (\\d+)$`, "m"))?.[1]);
  return { sending: value("sending"), paced: value("paced") };
}

/** The head of each conversation's log: its last change. */
async function heads(ids: string[]): Promise<Map<string, number>> {
  return h.deps.store.conversations.lastSeqs(ids);
}

/** Every conversation's events came in order, gapless from after its position, then its resumed. */
function expectCaughtUp(got: Frame[], ids: string[], last: Map<string, number>) {
  const replies = got.filter((f) => f.type === "event" || f.type === "resumed");
  const expected = ids.flatMap((id) => {
    const head = last.get(id) ?? 0;
    return [...Array.from({ length: head }, (_, i) => ["event", id, i + 1]), ["resumed", id, head]];
  });
  expect(replies.map((f) => [f.type, f.conversation_id, f.seq])).toEqual(expected);
}

describe("a paced catch-up", () => {
  it("gets a client that reads slowly a backlog many times the limit, in order, without closing it", async () => {
    const client = await bobSocket();
    // A chunk read, then a pause: far slower than the server could write.
    client.throttle(50);
    const before = pauses();
    client.send({ type: "resume", ref: 1, positions: Object.fromEntries(several.map((id) => [id, 0])) });
    await client.until(
      (f) =>
        isBinary(f) && decodeFrame(f).type === "resumed" && decodeFrame(f).conversation_id === several[2],
      30_000,
    );
    expectCaughtUp(frames(client), several, await heads(several));
    await expectOpen(client);
    // It did wait for the client (or the test proves nothing).
    expect(pauses()).toBeGreaterThan(before);
    client.close();
    await waitFor(() => (connected() ? undefined : true));
  }, 40_000);

  it("paces one conversation whose changes alone are far past the limit; live events meanwhile are ones the SDK puts in order", async () => {
    const [one] = several as [string];
    const position = (await heads([one])).get(one) ?? 0;
    const replayed = (await heads([big])).get(big) ?? 0;
    const client = await bobSocket();
    client.throttle(50);
    const before = pauses();
    client.send({ type: "resume", ref: 2, positions: { [big]: 0 } });
    // Posted once the catch-up is coming, while it waits for the client: they reach its socket live, in
    // between.
    await client.until((f) => isBinary(f) && decodeFrame(f).type === "event", 10_000);
    for (let i = 1; i <= 3; i++) await post(big, `live.${i}`);
    for (let i = 1; i <= 2; i++) await post(one, `live.${i}`);
    await client.until(
      (f) => isBinary(f) && decodeFrame(f).type === "resumed" && decodeFrame(f).conversation_id === big,
      30_000,
    );
    const last = await heads([big, one]);
    await client.until(
      (f) => isBinary(f) && decodeFrame(f).type === "event" && decodeFrame(f).seq === last.get(one),
      10_000,
    );
    await expectOpen(client);
    expect(pauses()).toBeGreaterThan(before);
    const got = frames(client);
    const resumed = got.findIndex((f) => f.type === "resumed");
    expect(got[resumed]?.seq).toBe(replayed);
    // The live events came while the catch-up was paced, before its end.
    const live = got.slice(0, resumed).filter((f) => f.type === "event" && (f.seq as number) > replayed);
    expect(live.length).toBeGreaterThan(0);

    // What the SDK makes of them (resume.ts), each frame taken as the connection takes it (Catchup.frame:
    // a frame shaped as a replay's goes out at once): the replay goes out as it comes, never held; the
    // conversation resumed holds its live events until its `resumed`, the other delivers them as they come.
    const delivered: ConversationEvent[] = [];
    const catchup = new Catchup(
      bob.id,
      (event) => delivered.push(event),
      () => {
        throw new Error("a hole");
      },
      () => {
        throw new Error("an unknown conversation");
      },
    );
    catchup.join(big, 0);
    catchup.join(one, position);
    catchup.asking(big);
    /** How many of the big conversation's events were out when its `resumed` came. */
    let outBeforeResumed = -1;
    for (const f of got) {
      if (f.type === "event") catchup.frame(f as unknown as ConversationEvent);
      if (f.type === "resumed") {
        if (f.conversation_id === big)
          outBeforeResumed = delivered.filter((e) => e.conversation_id === big).length;
        catchup.rewind(f.conversation_id, f.seq);
        catchup.finish(f.conversation_id, f.seq);
      }
    }
    const seqs = (id: string) => delivered.filter((e) => e.conversation_id === id).map((e) => e.seq);
    const bigHead = last.get(big) ?? 0;
    expect(seqs(big)).toEqual(Array.from({ length: bigHead }, (_, i) => i + 1));
    expect(seqs(one)).toEqual([position + 1, position + 2]);
    // Every change the catch-up read was out before its end: the SDK held none of them (a replay it took
    // for live events would wait whole in memory until the `resumed`).
    expect(outBeforeResumed).toBe(replayed);
    // Those past what the catch-up read are told as live; the rest as its replay.
    expect(delivered.filter((e) => e.conversation_id === big && !e.replayed).map((e) => e.seq)).toEqual([
      replayed + 1,
      replayed + 2,
      replayed + 3,
    ]);
    client.close();
    await waitFor(() => (connected() ? undefined : true));
  }, 40_000);

  it("closes a client that stops reading in the middle of one as a slow consumer, and holds nothing of it after", async () => {
    const client = await bobSocket();
    const before = pauses();
    client.send({ type: "resume", ref: 3, positions: { [big]: 0 } });
    // Reads nothing more: the kernel's buffers fill, then the catch-up waits on the socket, which takes nothing.
    client.tcp.pause();
    await waitFor(() => (pauses() > before ? true : undefined), 10_000);
    expect(resumes()).toEqual({ sending: 0, paced: 1 });
    const waitedAt = Date.now();
    await waitFor(() => (connected() ? undefined : true), 5000);
    // WS_DRAIN_TIMEOUT (1 s), found by the sweep (every 250 ms).
    expect(Date.now() - waitedAt).toBeGreaterThan(500);
    expect(resumes()).toEqual({ sending: 0, paced: 0 });
    // Client side: what was queued, then the close.
    client.tcp.resume();
    const close = await client.until(isClose, 10_000);
    expect([closeCode(close), closeReason(close)]).toEqual([4001, "slow consumer"]);
    const got = frames(client).filter((f) => f.type === "event" && f.conversation_id === big);
    expect(got.map((f) => f.seq)).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
    expect(got.length).toBeLessThan((await heads([big])).get(big) ?? 0);
    expect(frames(client).some((f) => f.type === "resumed")).toBe(false);
  }, 30_000);
});

/** A dispatcher of its own over the harness's store, for sockets that are not the server's. */
function dispatcherAlone(): Dispatcher {
  const connections = new Connections();
  const fanout = new Fanout(connections, new MemoryBroker(), {
    forget: () => {},
    revoked: () => {},
    peersOf: async () => [],
    failed: () => {},
  });
  return new Dispatcher(h.deps, fanout, new Presence(h.deps.store, h.deps.clock, fanout), connections);
}

/**
 * Bob's socket as the dispatcher sees it, its queue past the pacer's mark until `fake.buffered` says
 * otherwise; what it is sent goes to `sent`, the codes of the errors it is told to `errors`.
 */
function crowdedSocket(
  encoding: "msgpack" | "json",
  sent: (data: Uint8Array | string) => void,
  errors: string[] = [],
) {
  const fake = {
    data: {
      kind: "user",
      user_id: bob.id,
      session_id: bob.session_id,
      encoding,
      errors: { inc: ([code]: string[]) => errors.push(code as string) },
    },
    readyState: 1,
    buffered: LIMIT,
    getBufferedAmount: () => fake.buffered,
    cork: (fn: () => void) => fn(),
    send(data: Uint8Array | string) {
      sent(data);
      return typeof data === "string" ? Buffer.byteLength(data) : data.length;
    },
  };
  return { fake, ws: fake as unknown as Socket };
}

describe("a socket's resumes", () => {
  it("are answered one at a time, in the order they came: a second waits while the first is paced", async () => {
    const dispatcher = dispatcherAlone();
    const sent: { frame: Frame; bytes: number }[] = [];
    const { fake, ws } = crowdedSocket("msgpack", (bytes) =>
      sent.push({ frame: unpack(bytes as Uint8Array), bytes: bytes.length }),
    );
    const [one] = several as [string];
    const first = dispatcher.handle(ws, { type: "resume", ref: "first", positions: { [big]: 0 } });
    const second = dispatcher.handle(ws, { type: "resume", ref: "second", positions: { [one]: 0 } });
    await waitFor(() => (dispatcher.pacer.waiting === 1 ? true : undefined));
    // The first wrote a chunk (a frame past it at most) and waits; the second wrote nothing.
    expect(sent.every((s) => s.frame.conversation_id === big && s.frame.type === "event")).toBe(true);
    expect(sent.reduce((n, s) => n + s.bytes, 0)).toBeLessThanOrEqual(dispatcher.pacer.chunk + 2 * CONTENT);
    await Bun.sleep(20);
    expect(sent.some((s) => s.frame.conversation_id !== big)).toBe(false);
    // Drained: it goes on, and never waits again while the socket keeps up.
    fake.buffered = 0;
    dispatcher.drained(ws);
    await Promise.all([first, second]);
    expect(dispatcher.pacer.waiting).toBe(0);
    const replies = sent
      .filter((s) => s.frame.type === "resumed")
      .map((s) => [s.frame.conversation_id, s.frame.ref]);
    expect(replies).toEqual([
      [big, "first"],
      [one, "second"],
    ]);
    const conversations = sent.map((s) => s.frame.conversation_id);
    expect(conversations.lastIndexOf(big)).toBeLessThan(conversations.indexOf(one));
  });
});

describe("a socket's resumes in hand", () => {
  it("are at most WS_RATE_BURST: one more, while the socket reads none of their replies, is refused rate_limited", async () => {
    const dispatcher = dispatcherAlone();
    const sent: Frame[] = [];
    const errors: string[] = [];
    const { fake, ws } = crowdedSocket("msgpack", (bytes) => sent.push(unpack(bytes as Uint8Array)), errors);
    const [one] = several as [string];
    const burst = h.deps.config.WS_RATE_BURST;
    // The first is paced (the socket reads nothing), the others wait their turn behind it.
    const held = [dispatcher.handle(ws, { type: "resume", ref: 0, positions: { [big]: 0 } })];
    await waitFor(() => (dispatcher.pacer.waiting === 1 ? true : undefined));
    for (let i = 1; i < burst; i++)
      held.push(dispatcher.handle(ws, { type: "resume", ref: i, positions: { [one]: 0 } }));
    await dispatcher.handle(ws, { type: "resume", ref: "over", positions: { [one]: 0 } });
    expect(sent.filter((f) => f.type === "error")).toEqual([
      expect.objectContaining({ type: "error", ref: "over", code: "rate_limited" }),
    ]);
    // Read: every one in hand is answered, and the socket may resume again.
    fake.buffered = 0;
    dispatcher.drained(ws);
    await Promise.all(held);
    const answered = sent.filter((f) => f.type === "resumed").map((f) => f.ref);
    expect(answered).toEqual(Array.from({ length: burst }, (_, i) => i));
    await dispatcher.handle(ws, { type: "resume", ref: "again", positions: { [one]: 0 } });
    expect(sent.at(-1)).toMatchObject({ type: "resumed", ref: "again", conversation_id: one });
    expect(sent.filter((f) => f.type === "error")).toHaveLength(1);
    expect(errors).toEqual(["rate_limited"]);
  });
});

describe("a paced catch-up in JSON", () => {
  it("counts a chunk in bytes, as the socket's buffer is: text of three bytes a character writes no more", async () => {
    const dispatcher = dispatcherAlone();
    // 10,000 characters of three bytes each: a JSON frame three times as long in bytes as in characters.
    const cjk = await group(h.app, alice, [bob]);
    for (let i = 1; i <= 40; i++) {
      const res = await call(h.app, "POST", `/api/conversations/${cjk}/messages`, {
        token: alice.token,
        body: { content: `${i} ${"東".repeat(10_000)}` },
      });
      expect(res.status).toBe(201);
    }
    const sent: number[] = [];
    const { fake, ws } = crowdedSocket("json", (text) => sent.push(Buffer.byteLength(text)));
    const done = dispatcher.handle(ws, { type: "resume", ref: "cjk", positions: { [cjk]: 0 } });
    await waitFor(() => (dispatcher.pacer.waiting === 1 ? true : undefined));
    // A chunk, and the frame that took it past the chunk's size, at most: in bytes.
    const largest = Math.max(...sent);
    expect(largest).toBeGreaterThan(30_000);
    expect(sent.reduce((n, b) => n + b, 0)).toBeLessThanOrEqual(dispatcher.pacer.chunk + largest);
    fake.buffered = 0;
    dispatcher.drained(ws);
    await done;
    expect(sent.length).toBe(41);
  });
});

describe("Pacer", () => {
  /** A socket with a queue of `buffered` bytes. */
  const fake = (buffered: number) => {
    const ws = { readyState: 1, buffered, getBufferedAmount: () => ws.buffered };
    return ws as typeof ws & Socket;
  };

  it("waits past a quarter of the limit, and wakes once the socket has drained to an eighth", async () => {
    const pacer = new Pacer(8000, 1000);
    expect([pacer.high, pacer.low, pacer.chunk]).toEqual([2000, 1000, 1000]);
    const ws = fake(2000);
    expect(pacer.crowded(ws)).toBe(false);
    ws.buffered = 2001;
    expect(pacer.crowded(ws)).toBe(true);
    let woke: boolean | undefined;
    void pacer.drain(ws).then((open) => {
      woke = open;
    });
    expect(pacer.waiting).toBe(1);
    ws.buffered = 1500;
    pacer.drained(ws);
    await Bun.sleep(0);
    expect(woke).toBeUndefined();
    ws.buffered = 1000;
    pacer.drained(ws);
    await Bun.sleep(0);
    expect([woke, pacer.waiting]).toEqual([true, 0]);
  });

  it("wakes a catch-up whose socket closed with false, and finds one that took nothing for the timeout", async () => {
    const pacer = new Pacer(8000, 1000);
    const ws = fake(5000);
    const waited = pacer.drain(ws);
    const start = Date.now();
    expect(pacer.stalled(start + 500)).toEqual([]);
    // Taking some of its queue is progress, even while still past the mark.
    ws.buffered = 4000;
    pacer.drained(ws);
    expect(pacer.stalled(start + 999)).toEqual([]);
    expect(pacer.stalled(Date.now() + 1001)).toEqual([ws]);
    ws.readyState = 3;
    pacer.closed(ws);
    expect([await waited, pacer.waiting]).toEqual([false, 0]);
    // A closed socket is never waited on.
    expect(pacer.crowded(ws)).toBe(true);
    expect(await pacer.drain(ws)).toBe(false);
    expect(pacer.waiting).toBe(0);
  });
});
