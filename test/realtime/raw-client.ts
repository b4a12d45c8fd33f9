// A WebSocket client over Bun.connect that reads only when told: it can stop reading (pause) so that the
// server's send buffer for it fills, or read slowly (throttle), a chunk at a time with a pause after each.

import { createHash, randomBytes } from "node:crypto";
import type { Socket as TcpSocket } from "bun";
import { Packr } from "msgpackr";
import type { Frame } from "./ws-client.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

export interface RawClient {
  tcp: TcpSocket<undefined>;
  /** Data frames and control frames, in order, parsed from what was read so far. */
  frames: RawFrame[];
  /** Resolves when the TCP connection ends (FIN, RST or local close). */
  ended: Promise<void>;
  until(match: (f: RawFrame) => boolean, ms?: number): Promise<RawFrame>;
  /** From now on, after each chunk read, reading stops for `ms` (0: reads as fast as it can again). */
  throttle(ms: number): void;
  /** Sends a client frame (masked, as a client must), MessagePack-encoded. */
  send(frame: unknown): void;
  /** Drops the connection. */
  close(): void;
}

export const decodeFrame = (f: RawFrame) => packr.unpack(f.payload) as Frame;
export const isBinary = (f: RawFrame) => f.opcode === 0x2;
export const isClose = (f: RawFrame) => f.opcode === 0x8;
/** A close frame's code. */
export const closeCode = (f: RawFrame) => new DataView(f.payload.buffer, f.payload.byteOffset).getUint16(0);
/** A close frame's reason. */
export const closeReason = (f: RawFrame) => Buffer.from(f.payload.subarray(2)).toString();

/** Opens `path` on 127.0.0.1:`port` as parley.msgpack, with the token in the Authorization header. */
export async function rawClient(port: number, path: string, token: string): Promise<RawClient> {
  const key = randomBytes(16).toString("base64");
  const accept = createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
  let buffered = new Uint8Array(0);
  let upgraded = false;
  let failure: Error | undefined;
  let pauseMs = 0;
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
      data(socket, chunk) {
        const next = new Uint8Array(buffered.length + chunk.length);
        next.set(buffered);
        next.set(chunk, buffered.length);
        buffered = next;
        parse();
        notify();
        if (pauseMs > 0) {
          socket.pause();
          setTimeout(() => socket.resume(), pauseMs);
        }
      },
      end: () => onEnd(),
      close: () => onEnd(),
      error: () => onEnd(),
    },
  });
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

  return {
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
    throttle(ms) {
      pauseMs = ms;
    },
    send(frame) {
      const payload = packr.pack(frame);
      const mask = randomBytes(4);
      const length = payload.length;
      const head =
        length < 126
          ? [0x82, 0x80 | length]
          : length < 65536
            ? [0x82, 0x80 | 126, length >> 8, length & 0xff]
            : [0x82, 0x80 | 127, 0, 0, 0, 0, ...[24, 16, 8, 0].map((s) => (length >>> s) & 0xff)];
      const out = new Uint8Array(head.length + 4 + length);
      out.set(head);
      out.set(mask, head.length);
      for (let i = 0; i < length; i++)
        out[head.length + 4 + i] = (payload[i] as number) ^ (mask[i % 4] as number);
      tcp.write(out);
    },
    close() {
      tcp.terminate();
    },
  };
}
