// ParleyClient: the SDK's front door for Bun and browsers. Signs in, makes REST calls and opens the
// realtime connection; its tokens are kept fresh by tokens.ts.

import { ENCODINGS, type Encoding } from "../realtime/frames.ts";
import { ParleyError } from "./errors.ts";
import type { Handler, OpenInfo, RealtimeEventType } from "./events.ts";
import { checkOptions, RealtimeConnection, type RealtimeOptions } from "./realtime.ts";
import { type Fetch, RestClient } from "./rest.ts";
import { sessionEnd } from "./session-end.ts";
import { defaultLocks, type Locks, type Session, type SessionStore } from "./session-store.ts";
import { sessionOf, Tokens } from "./tokens.ts";
import type { SignInInput, SignUpInput, TokenResponse } from "./types.ts";

export { ParleyError } from "./errors.ts";
export type * from "./events.ts";
export { type Ack, type MessageInput, type PresenceStatus, RealtimeConnection } from "./realtime.ts";
export type { MemberReceipts } from "./receipts.ts";
export { RestClient } from "./rest.ts";
export {
  type Locks,
  localStorageSessionStore,
  type Session,
  type SessionStore,
} from "./session-store.ts";
export type * from "./types.ts";

export interface ParleyClientOptions {
  baseUrl: string;
  /**
   * Realtime frames: `msgpackr` (default: MessagePack records, the smallest and fastest to read; plain
   * `msgpack` where the server has no records), `msgpack` (plain maps) or `json` text.
   */
  encoding?: Encoding;
  /** Fraction of the access token's lifetime after which it is refreshed. Default 0.8. */
  refreshAt?: number;
  /** How long a realtime request waits for its answer. Default 10 s. */
  requestTimeoutMs?: number;
  /** How long a new realtime socket has to open and say hello before it counts as failed. Default 10 s. */
  helloTimeoutMs?: number;
  /** How long a REST call may take before it fails with `timeout`. Default 30 s. */
  restTimeoutMs?: number;
  backoff?: RealtimeOptions["backoff"];
  fetch?: Fetch;
  WebSocket?: typeof WebSocket;
  /**
   * Where the session is kept and shared with the app's other clients, e.g. its other tabs
   * (`localStorageSessionStore()`): each refresh saves the new tokens there, and a client about to refresh
   * takes the tokens another one saved instead of spending a refresh token twice (which ends the session).
   */
  store?: SessionStore;
  /**
   * Acknowledge delivery of the messages the connection hands the app (live and caught up), so that their
   * senders see them delivered. Default true; false leaves it to `realtime.ack()`.
   */
  autoAck?: boolean;
  /** The lock refreshes are taken under. Default: the browser's `navigator.locks`, else one per realm. */
  locks?: Locks;
}

export class ParleyClient {
  readonly rest: RestClient;
  private opts: ParleyClientOptions;
  private tokens: Tokens;
  private connection: RealtimeConnection | null = null;
  /**
   * The last connection connect() made: its first hello (the calls begun with it join it once they have
   * listed), and the positions it started from.
   */
  private opening: {
    connection: RealtimeConnection;
    hello: Promise<OpenInfo>;
    positions: Readonly<Record<string, number>>;
  } | null = null;
  /** The app's handlers, each with its removal from the connection it is on now (set on every new one). */
  private handlers: { type: RealtimeEventType; handler: Handler<RealtimeEventType>; off?: () => void }[] = [];
  /** Counts close() calls: a connect() that sees it change while it waits gives up. */
  private closes = 0;
  constructor(opts: ParleyClientOptions) {
    const refreshAt = opts.refreshAt ?? 0.8;
    if (!(refreshAt > 0 && refreshAt < 1))
      throw new TypeError(`refreshAt: expected 0 < x < 1, got ${refreshAt}`);
    if (opts.encoding !== undefined && !ENCODINGS.includes(opts.encoding))
      throw new TypeError(`encoding: expected ${ENCODINGS.join(", ")}; got ${String(opts.encoding)}`);
    checkOptions(opts);
    this.opts = { ...opts, refreshAt };
    this.rest = new RestClient({
      baseUrl: opts.baseUrl,
      fetch: opts.fetch,
      timeoutMs: opts.restTimeoutMs,
      // The socket's fresh-token path: a token close to its expiry (a device that slept) is refreshed first.
      token: () => (this.tokens.session ? this.tokens.fresh() : undefined),
      renew: (expired) => this.tokens.renew(expired),
      // Answered that the session was revoked: it ends here as when its refresh is refused (one path).
      revoked: (token, error) => void this.tokens.revoked(token, error),
      self: (user) => this.tokens.follow(user),
    });
    this.tokens = new Tokens({
      refreshAt,
      store: opts.store,
      locks: opts.locks ?? defaultLocks(),
      exchange: (refreshToken) => this.rest.refresh(refreshToken),
      // Found over here (a refused refresh, a call answered session_revoked) or in another tab (signed out
      // there): the connection ends as when the server ends the session, not at its next reconnect.
      ended: (sessionId, error) => {
        if (this.connection?.sessionId === sessionId) this.connection.endSession(error);
      },
    });
  }

  get session(): Session | null {
    return this.tokens.session;
  }

  /** The open realtime connection; throws before connect(). */
  get realtime(): RealtimeConnection {
    if (!this.connection) throw new ParleyError("closed", "not connected: call connect() first");
    return this.connection;
  }

  async signup(input: SignUpInput): Promise<Session> {
    return this.tokens.start(sessionOf(await this.rest.signup(input)));
  }

  async signin(input: SignInInput): Promise<Session> {
    return this.tokens.start(sessionOf(await this.rest.signin(input)));
  }

  /**
   * Trades the refresh token for new tokens; concurrent callers share one request. Clients sharing a
   * store take turns under a lock, and one that finds newer tokens of its session there takes them.
   */
  refresh(): Promise<Session> {
    return this.tokens.refresh();
  }

  /**
   * Starts from the store's session (another tab's sign-in, an earlier visit); null when it holds none or
   * the session has ended. Tokens already close to their expiry are refreshed first.
   */
  async restore(): Promise<Session | null> {
    if (!this.opts.store) throw new ParleyError("bad_request", "restore() needs the store option");
    return this.tokens.restore(this.opts.store, () => this.close());
  }

  /**
   * Ends the session on the server and locally (and in the store, if it still holds this session). One
   * the server finds over already (revoked elsewhere, its refresh refused) is signed out of all the same.
   */
  async signout(): Promise<void> {
    const ended = this.tokens.session;
    try {
      if (ended) await this.rest.signout();
    } catch (err) {
      if (!sessionEnd({ error: err })) throw err;
    } finally {
      this.close();
      await this.tokens.forget(ended);
    }
  }

  /** Adopts tokens obtained elsewhere (a magic link); saved to the store, if any, in the background. */
  adopt(res: TokenResponse): Session {
    const session = sessionOf(res);
    void this.tokens.start(session);
    return session;
  }

  /** Handlers registered here survive connect() / close() cycles. */
  on<K extends RealtimeEventType>(type: K, handler: Handler<K>): () => void {
    const entry: (typeof this.handlers)[number] = { type, handler: handler as Handler<RealtimeEventType> };
    entry.off = this.connection?.on(type, handler);
    this.handlers.push(entry);
    // Removed from the connection it is on when removed, not the one it was added on: connect() makes a
    // new connection (after close(), or the first one after an on() made before it) and adds it there.
    return () => {
      entry.off?.();
      this.handlers = this.handlers.filter((h) => h !== entry);
    };
  }

  /**
   * Opens the realtime connection. Unless positions are given, it starts from each conversation's
   * current last_seq and resumes from there at once, so nothing sent while it was opening is missed.
   * While the connection is opening or waiting to reconnect, this joins it (see RealtimeConnection.connect);
   * given positions other than those it started from, it fails with `bad_request` instead (close() first).
   */
  async connect(opts: { positions?: Record<string, number> } = {}): Promise<OpenInfo> {
    const session = this.tokens.session;
    if (!session) throw new ParleyError("unauthorized", "sign in before connecting");
    this.tokens.wake();
    // One on its way is joined (a connected one refuses); one that ended for good (its session over) stays
    // readable (its requests tell why) until replaced here.
    if (this.connection && !this.connection.ended) {
      const started = this.opening?.connection === this.connection ? this.opening.positions : undefined;
      if (opts.positions && !(started && samePositions(opts.positions, started))) {
        throw new ParleyError(
          "bad_request",
          "a connection is open or on its way from other positions; close() it to start from these",
        );
      }
      return this.connection.connect();
    }
    const closes = this.closes;
    let positions = opts.positions;
    if (!positions) {
      positions = {};
      for (const c of await this.rest.conversations.all()) positions[c.id] = c.last_seq;
      if (this.closes !== closes) throw new ParleyError("closed", "closed while connecting");
      // Another connect() made the connection while this one listed: it is joined, as above. Begun with
      // that one, this call has its answer even if the connection is open by now (not "already connected").
      if (this.connection && !this.connection.ended) {
        if (this.opening?.connection === this.connection) return this.opening.hello;
        return this.connection.connect();
      }
    }
    const connection = new RealtimeConnection({
      baseUrl: this.opts.baseUrl,
      userId: session.user.id,
      sessionId: session.sessionId,
      token: () => this.tokens.fresh(),
      encoding: this.opts.encoding,
      rest: this.rest,
      positions,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      helloTimeoutMs: this.opts.helloTimeoutMs,
      backoff: this.opts.backoff,
      WebSocket: this.opts.WebSocket,
      checkSession: () => this.checkSession(),
      autoAck: this.opts.autoAck,
    });
    for (const entry of this.handlers) entry.off = connection.on(entry.type, entry.handler);
    this.connection = connection;
    const hello = connection.connect();
    this.opening = { connection, hello, positions };
    try {
      return await hello;
    } catch (err) {
      // Unless close() and a newer connect() have replaced it meanwhile (in the same tick, say).
      if (this.connection === connection) this.connection = null;
      throw err;
    }
  }

  /**
   * Stops everything the client started: the realtime connection (a connect() still under way fails with
   * `closed`), the REST calls on their way (they fail with `closed`), the token refresh timer and the
   * watch on the store. The client's REST calls made afterwards still go out.
   */
  close() {
    this.closes++;
    this.tokens.stop();
    this.rest.cancel();
    this.connection?.close();
    this.connection = null;
  }

  /**
   * Resolves while the session stands; rejects with the server's 401 once it is over. An access token past
   * its time says nothing about the session: the REST client refreshes it and asks again.
   */
  private async checkSession(): Promise<void> {
    await this.rest.me();
  }
}

function samePositions(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
