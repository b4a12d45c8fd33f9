// A socket that stops reading is closed with 4001, and the members who read still get every message.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import type { Socket as TcpSocket } from "bun";
import { Packr } from "msgpackr";
import { call, type Harness, harness, signup } from "../helpers.ts";
import { connect, type Frame, type TestSocket } from "./ws-client.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
/** 48 MB of messages: far past any kernel buffer, still under Bun's own 64 MB backstop. */
const MAX_MESSAGES = 4000;
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

let h: Harness;
let port: number;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  h = await harness({ WS_BACKPRESSURE_LIMIT: "1024", RATE_LIMIT_PER_MINUTE: "100000" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  port = h.app.server?.port ?? 0;
});
afterAll(async () => {
  for (const clean of cleanups.splice(0)) clean();
  await h.app.stop(true);
  await h.close();
});

interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

/** A WebSocket client over Bun.connect that can stop reading (pause) so the server's send buffer fills. */
interface RawClient {
  tcp: TcpSocket<undefined>;
  /** Data frames and control frames, in order, parsed from what was read so far. */
  frames: RawFrame[];
  /** Resolves when the TCP connection ends (FIN, RST or local close). */
  ended: Promise<void>;
  until(match: (f: RawFrame) => boolean, ms?: number): Promise<RawFrame>;
}

async function rawClient(path: string, token: string): Promise<RawClient> {
  const key = randomBytes(16).toString("base64");
  const accept = createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
  let buffered = new Uint8Array(0);
  let upgraded = false;
  let failure: Error | undefined;
  const frames: RawFrame[] = [];
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  let onEnd: () => void = () => {};
  const ended = new Promise<void>((r) => {
    onEnd = r;
  });

  const parse = () => {
    if (!upgraded) {
      const text = Buffer.from(buffered).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = text.slice(0, end);
      const accepted = head
        .split("\r\n")
        .some(
          (line) => line.toLowerCase().startsWith("sec-websocket-accept:") && line.endsWith(` ${accept}`),
        );
      if (!head.startsWith("HTTP/1.1 101") || !accepted)
        failure = new Error(`handshake refused: ${head.split("\r\n")[0]}`);
      upgraded = true;
      buffered = buffered.subarray(end + 4);
    }
    // Server frames are never masked.
    for (;;) {
      if (buffered.length < 2) return;
      const b0 = buffered[0] as number;
      const b1 = buffered[1] as number;
      let length = b1 & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = (buffered[2] as number) * 256 + (buffered[3] as number);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(new DataView(buffered.buffer, buffered.byteOffset + 2, 8).getBigUint64(0));
        offset = 10;
      }
      if (buffered.length < offset + length) return;
      frames.push({ opcode: b0 & 0x0f, payload: buffered.slice(offset, offset + length) });
      buffered = buffered.subarray(offset + length);
    }
  };

  const tcp = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_socket, chunk) {
        const next = new Uint8Array(buffered.length + chunk.length);
        next.set(buffered);
        next.set(chunk, buffered.length);
        buffered = next;
        parse();
        notify();
      },
      end: () => onEnd(),
      close: () => onEnd(),
      error: () => onEnd(),
    },
  });
  cleanups.push(() => tcp.terminate());
  tcp.write(
    [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Protocol: parley.msgpack",
      `Authorization: Bearer ${token}`,
      "",
      "",
    ].join("\r\n"),
  );

  const client: RawClient = {
    tcp,
    frames,
    ended,
    until(match, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (failure) return done(() => reject(failure));
          const found = frames.find(match);
          if (found) done(() => resolve(found));
        };
        const done = (settle: () => void) => {
          listeners.delete(check);
          clearTimeout(timer);
          settle();
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`raw client: no matching frame within ${ms} ms`))),
          ms,
        );
        listeners.add(check);
        check();
      });
    },
  };
  return client;
}

const decodeFrame = (f: RawFrame) => packr.unpack(f.payload) as Frame;
const isBinary = (f: RawFrame) => f.opcode === 0x2;
const isClose = (f: RawFrame) => f.opcode === 0x8;

describe("slow consumers", () => {
  it("closes a socket that stops reading with 4001 while a reading member gets every message, in order", async () => {
    const [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const created = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "group", participant_ids: [bob.id, carol.id] },
    });
    const conversation = created.body.id as string;

    const slow = await rawClient(`/ws/${bob.id}/${bob.session_id}`, bob.token);
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
    expect(new DataView(close.payload.buffer, close.payload.byteOffset).getUint16(0)).toBe(4001);
    expect(Buffer.from(close.payload.subarray(2)).toString()).toBe("slow consumer");
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
