// A socket that stops reading is closed with 4001, and the members who read still get every message.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { leastBackpressureLimit } from "../../src/realtime/frame-bound.ts";
import { call, type Harness, harness, signup } from "../helpers.ts";
import { closeCode, closeReason, decodeFrame, isBinary, isClose, rawClient } from "./raw-client.ts";
import { connect, type TestSocket } from "./ws-client.ts";

/** 48 MB of messages: far past any kernel buffer, still under Bun's own 64 MB backstop. */
const MAX_MESSAGES = 4000;
/** Each message is 12 KB. */
const MAX_MESSAGE_LENGTH = 12_100;

let h: Harness;
let port: number;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  // The least limit messages of this length allow (config.ts; about 290 KiB): small beside the kernel's buffers.
  h = await harness({
    MAX_MESSAGE_LENGTH: String(MAX_MESSAGE_LENGTH),
    // One reaction a message: the limit is the content's (these messages are reacted to by no one).
    MAX_REACTIONS_PER_MESSAGE: "1",
    WS_BACKPRESSURE_LIMIT: String(
      leastBackpressureLimit({ MAX_MESSAGE_LENGTH, MAX_REACTIONS_PER_MESSAGE: 1, MAX_GROUP_MEMBERS: 1024 }),
    ),
    RATE_LIMIT_PER_MINUTE: "100000",
  });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  port = h.app.server?.port ?? 0;
});
afterAll(async () => {
  for (const clean of cleanups.splice(0)) clean();
  await h.app.stop(true);
  await h.close();
});

describe("slow consumers", () => {
  it("closes a socket that stops reading with 4001 while a reading member gets every message, in order", async () => {
    const [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const created = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "group", participant_ids: [bob.id, carol.id] },
    });
    const conversation = created.body.id as string;

    const slow = await rawClient(port, `/ws/${bob.id}/${bob.session_id}`, bob.token);
    cleanups.push(() => slow.close());
    const hello = decodeFrame(await slow.until(isBinary));
    expect(hello).toMatchObject({ type: "hello", session_id: bob.session_id });
    // Stop reading: the kernel buffers fill, then Bun's own send buffer for this socket grows.
    slow.tcp.pause();

    const reader: TestSocket = await connect(`ws://127.0.0.1:${port}/ws/${carol.id}/${carol.session_id}`, [
      "parley.msgpack",
      `bearer.${carol.token}`,
    ]);
    cleanups.push(() => reader.close());
    await reader.next((f) => f.type === "hello");

    // Loopback kernel buffers alone take a few MB (about 3.6 MB here) before Bun's own buffer grows, so
    // publish until the server gives up on the slow consumer, then some more, rather than a fixed count.
    const content = "x".repeat(12_000);
    const connected = () => h.deps.gateway.connections.ofSession(bob.session_id).size > 0;
    const post = async (i: number) => {
      const res = await call(h.app, "POST", `/api/conversations/${conversation}/messages`, {
        token: alice.token,
        body: { content: `${i} ${content}` },
      });
      expect(res.status).toBe(201);
    };
    let total = 0;
    while (connected() && total < MAX_MESSAGES) await post(++total);
    expect(connected()).toBe(false);
    // Client side: reading again drains what was queued (before Bun's close timeout drops it), and the
    // last frame is a close with 4001. Later messages reach the others only.
    slow.tcp.resume();
    for (const end = total + 50; total < end; ) await post(++total);
    const close = await slow.until(isClose);
    await slow.ended;
    expect(slow.frames.at(-1)).toBe(close);
    expect(closeCode(close)).toBe(4001);
    expect(closeReason(close)).toBe("slow consumer");
    // What the slow consumer did get is a gapless prefix: frames were queued or the socket closed, never skipped.
    const got = slow.frames
      .filter(isBinary)
      .map(decodeFrame)
      .filter((f) => f.type === "event" && f.kind === "message.created")
      .map((f) => f.seq as number);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
    expect(got.length).toBeLessThan(total);

    const last = await reader.next(
      (f) => f.type === "event" && f.kind === "message.created" && f.seq === total,
      10_000,
    );
    expect(last.message.content).toBe(`${total} ${content}`);
    const seqs = reader.frames
      .filter((f) => f.type === "event" && f.kind === "message.created" && f.conversation_id === conversation)
      .map((f) => f.seq as number);
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(reader.ws.readyState).toBe(WebSocket.OPEN);

    reader.close();
    await reader.closed;
  }, 30_000);
});
