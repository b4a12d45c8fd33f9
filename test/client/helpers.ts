// Harness for SDK tests: a real server on port 0, SDK clients signed up against it, and a recorder that
// waits for typed events with a timeout (never a fixed sleep).

import type { Handler, RealtimeEventMap, RealtimeEventType } from "../../src/client/events.ts";
import {
  ParleyClient,
  type ParleyClientOptions,
  ParleyError,
  RealtimeConnection,
} from "../../src/client/index.ts";
import type { RealtimeOptions } from "../../src/client/realtime.ts";
import { type Harness, harness, newAccount } from "../helpers.ts";

export interface Server {
  h: Harness;
  baseUrl: string;
  clients: ParleyClient[];
  /** A new account, signed up through the SDK. */
  client(opts?: Partial<ParleyClientOptions>): Promise<ParleyClient>;
  stop(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const h = await harness(env);
  const server = h.app.listen({ port: 0, hostname: "127.0.0.1" });
  const baseUrl = `http://127.0.0.1:${server.server!.port}`;
  const clients: ParleyClient[] = [];
  return {
    h,
    baseUrl,
    clients,
    async client(opts = {}) {
      const c = new ParleyClient({ baseUrl, backoff: { minMs: 20, maxMs: 200 }, ...opts });
      clients.push(c);
      await c.signup(newAccount());
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      await h.app.stop(true);
      await h.close();
    },
  };
}

/** The ParleyError a call fails with; any other outcome fails the test. */
export async function rejection(promise: Promise<unknown>): Promise<ParleyError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ParleyError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

/** Holds the socket's next (re)connects, not REST calls, until the gate is opened; counts its token lookups. */
export function holdReconnects(c: ParleyClient) {
  let open: () => void = () => {};
  const gate = new Promise<void>((r) => {
    open = r;
  });
  // The connection's socket (link.ts) asks its options for a token at every (re)connect.
  const opts = (c.realtime as unknown as { link: { opts: { token: () => Promise<string> } } }).link.opts;
  const original = opts.token;
  const held = { lookups: 0, open };
  opts.token = async () => {
    held.lookups++;
    await gate;
    return original();
  };
  return held;
}

export interface Recorder<K extends RealtimeEventType> {
  items: RealtimeEventMap[K][];
  /** The first item (already seen or still to come) matching `match`, or a timeout error. */
  next(match?: (item: RealtimeEventMap[K]) => boolean, ms?: number): Promise<RealtimeEventMap[K]>;
  /** Waits until `count` items match. */
  count(
    n: number,
    match?: (item: RealtimeEventMap[K]) => boolean,
    ms?: number,
  ): Promise<RealtimeEventMap[K][]>;
}

/** Anything with typed `on`: a ParleyClient or a RealtimeConnection. */
export interface Source {
  on<K extends RealtimeEventType>(type: K, handler: Handler<K>): () => void;
}

export function record<K extends RealtimeEventType>(client: Source, type: K): Recorder<K> {
  const items: RealtimeEventMap[K][] = [];
  const waiters = new Set<() => void>();
  client.on(type, (item) => {
    items.push(item);
    for (const w of [...waiters]) w();
  });
  function until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const value = check();
        if (value === undefined) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no ${what} within ${ms} ms; last: ${JSON.stringify(items.slice(-3))}`));
      }, ms);
      waiters.add(waiter);
    });
  }
  return {
    items,
    next: (match = () => true, ms = 3000) => until(() => items.find(match), ms, `matching ${type}`),
    count: (n, match = () => true, ms = 3000) =>
      until(
        () => {
          const found = items.filter(match);
          return found.length >= n ? found : undefined;
        },
        ms,
        `${n} matching ${type}`,
      ),
  };
}

export interface FakeServer {
  baseUrl: string;
  /** Upgrades so far. */
  readonly upgrades: number;
  /** Every frame the clients sent, in order. */
  frames: Record<string, unknown>[];
  /** The sockets still open. */
  sockets: Set<import("bun").ServerWebSocket<unknown>>;
  stop(): void;
}

type Frame = Record<string, unknown> & { type: string };

/**
 * A stand-in for the gateway, speaking JSON (clients use `encoding: "json"`): it says hello (with `hello`'s
 * fields on top of the usual ones) on every upgrade and answers each frame with what `answer` returns
 * (nothing when it returns undefined; by default `ok`, or an ack for a message).
 */
export function fakeServer(
  opts: {
    hello?: Record<string, unknown>;
    answer?: (frame: Frame, ws: import("bun").ServerWebSocket<unknown>) => unknown;
    maxPayloadLength?: number;
    /** Runs after hello; e.g. closes the socket at once. */
    opened?: (ws: import("bun").ServerWebSocket<unknown>) => void;
    /** True: the upgrade is refused with 401, as a revoked session's would be. */
    refuse?: () => boolean;
    /** True: the socket opens but no hello comes on it (a server stuck before its hello). */
    mute?: () => boolean;
  } = {},
): FakeServer {
  let upgrades = 0;
  let seq = 0;
  const frames: Frame[] = [];
  const sockets = new Set<import("bun").ServerWebSocket<unknown>>();
  const answer =
    opts.answer ??
    ((f: Frame) =>
      f.type === "message"
        ? { type: "ack", ref: f.ref, client_msg_id: f.client_msg_id, message_id: `m${++seq}`, seq }
        : f.type === "resume"
          ? undefined
          : { type: f.type === "ping" ? "pong" : "ok", ref: f.ref, server_time: "" });
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req, srv) {
      upgrades++;
      if (opts.refuse?.()) return new Response("refused", { status: 401 });
      const headers = { "sec-websocket-protocol": "parley.json" };
      return srv.upgrade(req, { headers }) ? undefined : new Response("no", { status: 400 });
    },
    websocket: {
      maxPayloadLength: opts.maxPayloadLength,
      open(ws) {
        sockets.add(ws);
        if (opts.mute?.()) return;
        const hello = {
          type: "hello",
          user_id: "u",
          session_id: "d",
          server_time: "",
          heartbeat_interval: 30,
        };
        ws.send(JSON.stringify({ ...hello, ...opts.hello }));
        opts.opened?.(ws);
      },
      message(ws, data) {
        const frame = JSON.parse(String(data)) as Frame;
        frames.push(frame);
        const reply = answer(frame, ws);
        if (reply !== undefined) ws.send(JSON.stringify(reply));
      },
      close(ws) {
        sockets.delete(ws);
      },
    },
  });
  return {
    baseUrl: `http://127.0.0.1:${server.port}`,
    get upgrades() {
      return upgrades;
    },
    frames,
    sockets,
    stop: () => void server.stop(true),
  };
}

/** A connection to a fake server (JSON), with quick timeouts and backoff unless `opts` says otherwise. */
export function fakeConnection(baseUrl: string, opts: Partial<RealtimeOptions> = {}) {
  return new RealtimeConnection({
    baseUrl,
    userId: "u",
    sessionId: "d",
    token: () => "t",
    encoding: "json",
    requestTimeoutMs: 2000,
    backoff: { minMs: 5, maxMs: 50 },
    ...opts,
  });
}

export interface Proxy {
  baseUrl: string;
  /** While on, bytes are swallowed both ways and connections stay open: a dead link that sends no FIN. */
  blackhole: boolean;
  stop(): void;
}

/** A TCP proxy to 127.0.0.1:`targetPort` that can turn into a black hole. */
export function tcpProxy(targetPort: number): Proxy {
  type Side = { peer?: import("bun").Socket<Side>; early: Uint8Array[] };
  const open = new Set<import("bun").Socket<Side>>();
  const proxy: Proxy = { baseUrl: "", blackhole: false, stop: () => {} };
  const listener = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async open(client) {
        client.data = { early: [] };
        open.add(client);
        const upstream = await Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: targetPort,
          socket: {
            data(_up, bytes) {
              if (!proxy.blackhole) client.write(bytes);
            },
            close() {
              client.end();
            },
            error() {
              client.end();
            },
          },
        }).catch(() => undefined);
        if (!upstream) return void client.end();
        upstream.data = { peer: client, early: [] };
        client.data.peer = upstream;
        for (const bytes of client.data.early) upstream.write(bytes);
      },
      data(client, bytes) {
        if (proxy.blackhole) return;
        if (client.data.peer) client.data.peer.write(bytes);
        else client.data.early.push(new Uint8Array(bytes));
      },
      close(client) {
        open.delete(client);
        client.data.peer?.end();
      },
      error() {},
    },
  });
  proxy.baseUrl = `http://127.0.0.1:${listener.port}`;
  proxy.stop = () => {
    for (const c of open) c.end();
    listener.stop(true);
  };
  return proxy;
}
