// Harness for SDK tests: a real server on port 0, SDK clients signed up against it, and a recorder that
// waits for typed events with a timeout (never a fixed sleep).

import type { Handler, RealtimeEventMap, RealtimeEventType } from "../../src/client/events.ts";
import { ParleyClient, type ParleyClientOptions, ParleyError } from "../../src/client/index.ts";
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
