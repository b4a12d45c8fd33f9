// A bare WebSocket test client speaking the wire protocol directly (msgpack, msgpackr records or JSON),
// independent of the SDK, so gateway tests check the bytes a third-party client would see.

import { Packr } from "msgpackr";
import {
  type Encoding,
  recordOptions,
  SUBPROTOCOL_MSGPACKR,
  SUBPROTOCOLS,
} from "../../src/realtime/frames.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
/** What a msgpackr client of `parley.msgpackr.1` uses: the protocol's shared structures. */
export const recordsPackr = new Packr(recordOptions());

export type Frame = Record<string, any> & { type: string };

export interface TestSocket {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  sendRaw(data: string | Uint8Array): void;
  /** The first frame (seen or still to come) matching `match`, or a timeout error. */
  next(match: (f: Frame) => boolean, ms?: number): Promise<Frame>;
  close(): void;
}

export function connect(
  url: string,
  protocols: string[] = ["parley.msgpack"],
  headers?: Record<string, string>,
): Promise<TestSocket> {
  const binary = protocols.includes("parley.msgpack") || protocols.includes(SUBPROTOCOL_MSGPACKR);
  // The server's choice, once open: the records structures apply only when it chose them.
  const codec = () => (ws.protocol === SUBPROTOCOL_MSGPACKR ? recordsPackr : packr);
  // Bun's WebSocket accepts headers (native clients send the token in Authorization).
  const ws = new WebSocket(url, { protocols, headers } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  const frames: Frame[] = [];
  const waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = [];
  let resolveClosed: (v: { code: number; reason: string }) => void = () => {};
  const closed = new Promise<{ code: number; reason: string }>((r) => {
    resolveClosed = r;
  });
  ws.onmessage = (e) => {
    const frame = (
      typeof e.data === "string" ? JSON.parse(e.data) : codec().unpack(new Uint8Array(e.data as ArrayBuffer))
    ) as Frame;
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.match(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  };
  ws.onclose = (e) => resolveClosed({ code: e.code, reason: e.reason });
  const socket: TestSocket = {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(binary ? codec().pack(frame) : JSON.stringify(frame)),
    sendRaw: (data) => ws.send(data),
    next(match, ms = 3000) {
      const seen = frames.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve, from: frames.length };
        waiters.push(waiter);
        setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(frames.slice(-5))}`));
          }
        }, ms);
      });
    },
    close: () => ws.close(),
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(socket);
    ws.onerror = () => reject(new Error("websocket failed to open"));
    ws.addEventListener("close", (e) => reject(new Error(`closed before open: ${e.code}`)));
  });
}

/** Tries an upgrade with fetch and answers the HTTP status (a refused upgrade is a plain response). */
/** The headers of a WebSocket upgrade, for asking for one with fetch and reading the refusal. */
export const UPGRADE_HEADERS = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

export async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url.replace(/^ws/, "http"), { headers: { ...UPGRADE_HEADERS, ...headers } });
  await res.body?.cancel();
  return res.status;
}

/**
 * One upgrade to each url, all at once: answers the sockets that said hello. The others were refused
 * before the upgrade (or closed before hello), and are closed here.
 */
export async function burst(urls: string[], protocols: string[]): Promise<TestSocket[]> {
  const tries = await Promise.allSettled(urls.map((u) => connect(u, protocols)));
  const opened = tries.flatMap((t) => (t.status === "fulfilled" ? [t.value] : []));
  const greeted = await Promise.all(
    opened.map((s) =>
      s
        .next((f) => f.type === "hello")
        .then(
          () => s,
          () => {
            s.close();
            return null;
          },
        ),
    ),
  );
  return greeted.filter((s): s is TestSocket => s !== null);
}

/** Who opens a user socket: their ids and access token. */
export interface SocketUser {
  id: string;
  session_id: string;
  token: string;
}

/**
 * The user's socket on `base` (ws://host:port) in the encoding, the token as a subprotocol, once it has
 * said hello; put in `open`, if given, for the test file to close at its end.
 */
export async function userSocket(
  base: string,
  u: SocketUser,
  encoding: Encoding,
  open?: TestSocket[],
): Promise<TestSocket> {
  const s = await connect(`${base}/ws/${u.id}/${u.session_id}`, [
    SUBPROTOCOLS[encoding],
    `bearer.${u.token}`,
  ]);
  open?.push(s);
  await s.next((f) => f.type === "hello");
  return s;
}
