// ParleyClient: the SDK's front door for Bun and browsers. Signs in, keeps the tokens fresh (refreshing
// at 80% of their lifetime), makes REST calls and opens the realtime connection.

import { ENCODINGS, type Encoding } from "../realtime/frames.ts";
import { ParleyError } from "./errors.ts";
import type { Handler, OpenInfo, RealtimeEventType } from "./events.ts";
import { RealtimeConnection, type RealtimeOptions } from "./realtime.ts";
import { type Fetch, RestClient } from "./rest.ts";
import { sessionEnd } from "./session-end.ts";
import { defaultLocks, type Locks, type Session, type SessionStore } from "./session-store.ts";
import type { SignInInput, SignUpInput, TokenResponse } from "./types.ts";

export { ParleyError } from "./errors.ts";
export type * from "./events.ts";
export { type Ack, type MessageInput, type PresenceStatus, RealtimeConnection } from "./realtime.ts";
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
  /** The lock refreshes are taken under. Default: the browser's `navigator.locks`, else one per realm. */
  locks?: Locks;
}

/** Tokens closer than this to their expiry are refreshed before use. */
const EXPIRY_MARGIN_MS = 5000;
/** A refresh that failed without the server's answer is tried again after this long. */
const RETRY_REFRESH_MS = 5000;

export class ParleyClient {
  readonly rest: RestClient;
  private opts: ParleyClientOptions;
  private current: Session | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: { sessionId: string; done: Promise<Session> } | null = null;
  /**
   * The session whose refresh the server refused for good (revoked, reused, expired), with its refusal:
   * asked again it would refuse again, and each refresh counts against the address's sign-in rate limit.
   */
  private refused: { sessionId: string; error: ParleyError } | null = null;
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
  private locks: Locks;
  private unwatch: (() => void) | undefined;
  /** Counts close() calls: a connect() that sees it change while it waits gives up. */
  private closes = 0;
  /**
   * Set by close() until the app starts the client again (sign-in, restore(), connect()): a refresh made
   * meanwhile (one on its way at close(), which is let finish, or a REST call's) keeps its tokens but does
   * not start the refresh timer and the store's watch again.
   */
  private stopped = false;

  constructor(opts: ParleyClientOptions) {
    const refreshAt = opts.refreshAt ?? 0.8;
    if (!(refreshAt > 0 && refreshAt < 1))
      throw new TypeError(`refreshAt: expected 0 < x < 1, got ${refreshAt}`);
    if (opts.encoding !== undefined && !ENCODINGS.includes(opts.encoding))
      throw new TypeError(`encoding: expected ${ENCODINGS.join(", ")}; got ${String(opts.encoding)}`);
    this.opts = { ...opts, refreshAt };
    this.locks = opts.locks ?? defaultLocks();
    this.rest = new RestClient({
      baseUrl: opts.baseUrl,
      fetch: opts.fetch,
      timeoutMs: opts.restTimeoutMs,
      // The socket's fresh-token path: a token close to its expiry (a device that slept) is refreshed first.
      token: () => (this.current ? this.freshToken() : undefined),
      renew: (expired) => this.renew(expired),
    });
  }

  get session(): Session | null {
    return this.current;
  }

  /** The open realtime connection; throws before connect(). */
  get realtime(): RealtimeConnection {
    if (!this.connection) throw new ParleyError("closed", "not connected: call connect() first");
    return this.connection;
  }

  async signup(input: SignUpInput): Promise<Session> {
    return this.start(sessionOf(await this.rest.signup(input)));
  }

  async signin(input: SignInInput): Promise<Session> {
    return this.start(sessionOf(await this.rest.signin(input)));
  }

  /**
   * Trades the refresh token for new tokens; concurrent callers share one request. Clients sharing a
   * store take turns under a lock, and one that finds newer tokens of its session there takes them.
   */
  refresh(): Promise<Session> {
    const session = this.current;
    if (!session) return Promise.reject(new ParleyError("unauthorized", "not signed in"));
    if (this.refused?.sessionId === session.sessionId) return Promise.reject(this.refused.error);
    // One of an earlier session (signed out or into another since) is not this session's refresh.
    if (this.refreshing?.sessionId === session.sessionId) return this.refreshing.done;
    const done = this.locks
      .request(`parley.refresh:${session.sessionId}`, () => this.refreshUnderLock(session))
      .finally(() => {
        if (this.refreshing?.done === done) this.refreshing = null;
      });
    this.refreshing = { sessionId: session.sessionId, done };
    done.catch((err: unknown) => {
      // Without an answer (offline, a timeout, a 5xx) the server may have spent the refresh token all the
      // same: it is tried again soon, whoever asked, so that it comes back within the server's grace
      // (REFRESH_REUSE_GRACE_SECONDS) rather than at the next timer, when it would end the session as a
      // reuse. A refusal (the session over) or a sign-out is not tried again; one rate limited (its token
      // not spent) waits as long as it is told to, so that its retries do not keep the address's sign-in
      // limit spent.
      if (sessionEnd({ error: err }) || this.stopped || this.current?.sessionId !== session.sessionId) return;
      const told = err instanceof ParleyError ? Number(err.details.retry_after) : Number.NaN;
      this.scheduleRefresh(told > 0 ? Math.max(RETRY_REFRESH_MS, told * 1000) : RETRY_REFRESH_MS);
    });
    return done;
  }

  /**
   * Starts from the store's session (another tab's sign-in, an earlier visit); null when it holds none or
   * the session has ended. Tokens already close to their expiry are refreshed first.
   */
  async restore(): Promise<Session | null> {
    if (!this.opts.store) throw new ParleyError("bad_request", "restore() needs the store option");
    const stored = await this.opts.store.load();
    if (!stored) return null;
    this.stopped = false;
    this.use(stored);
    if (stored.expiresAt - Date.now() >= EXPIRY_MARGIN_MS) return stored;
    try {
      return await this.refresh();
    } catch (err) {
      if (!(err instanceof ParleyError && err.status === 401)) throw err;
      // The stored session has ended (signed out, revoked, expired): there is none to restore.
      await this.forget(stored);
      return null;
    }
  }

  /**
   * Ends the session on the server and locally (and in the store, if it still holds this session). One
   * the server finds over already (revoked elsewhere, its refresh refused) is signed out of all the same.
   */
  async signout(): Promise<void> {
    const ended = this.current;
    try {
      if (ended) await this.rest.signout();
    } catch (err) {
      if (!sessionEnd({ error: err })) throw err;
    } finally {
      await this.forget(ended);
    }
  }

  /** Adopts tokens obtained elsewhere (a magic link); saved to the store, if any, in the background. */
  adopt(res: TokenResponse): Session {
    const session = sessionOf(res);
    void this.start(session);
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
    const session = this.current;
    if (!session) throw new ParleyError("unauthorized", "sign in before connecting");
    if (this.stopped) {
      this.stopped = false;
      this.use(session);
    }
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
      token: () => this.freshToken(),
      encoding: this.opts.encoding,
      rest: this.rest,
      positions,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      helloTimeoutMs: this.opts.helloTimeoutMs,
      backoff: this.opts.backoff,
      WebSocket: this.opts.WebSocket,
      checkSession: () => this.checkSession(),
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
    this.stopped = true;
    this.rest.cancel();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    this.connection?.close();
    this.connection = null;
  }

  private async freshToken(): Promise<string> {
    const session = this.current;
    if (!session) throw new ParleyError("unauthorized", "signed out");
    // A session found over is not asked about again: calls fail with the refusal at once.
    if (this.refused?.sessionId === session.sessionId) throw this.refused.error;
    if (session.expiresAt - Date.now() < EXPIRY_MARGIN_MS) return (await this.refresh()).accessToken;
    return session.accessToken;
  }

  /**
   * Resolves while the session stands; rejects with the server's 401 once it is over. An access token past
   * its time says nothing about the session: the REST client refreshes it and asks again.
   */
  private async checkSession(): Promise<void> {
    await this.rest.me();
  }

  /** A new access token for a REST call the server found expired, unless another call already got one. */
  private async renew(expired: string): Promise<string | undefined> {
    const session = this.current;
    if (!session) return undefined;
    if (session.accessToken !== expired) return session.accessToken;
    return (await this.refresh()).accessToken;
  }

  private async refreshUnderLock(mine: Session): Promise<Session> {
    // Signed out, or into another session, while this waited for the lock: there is nothing to refresh.
    if (this.current?.sessionId !== mine.sessionId) throw signedOut();
    let from = mine;
    // Newer tokens of this session, from another client (the store) or heard of while waiting (watch).
    // Newer ones expire later: a store holding older ones (its save failed) must not hand back a refresh
    // token this client has spent, which would end the session as a reuse.
    const stored = this.opts.store ? await this.opts.store.load() : null;
    for (const other of [this.current, stored]) {
      if (
        other?.sessionId === mine.sessionId &&
        other.refreshToken !== from.refreshToken &&
        other.expiresAt >= from.expiresAt
      )
        from = other;
    }
    if (from !== mine) {
      this.use(from);
      if (from.expiresAt - Date.now() >= EXPIRY_MARGIN_MS) return from;
    }
    let renewed: Session;
    try {
      renewed = sessionOf(await this.rest.refresh(from.refreshToken));
    } catch (err) {
      // Refused for good (a 401: revoked, reused, expired); offline, a timeout or a 503 say nothing of it.
      const over = sessionEnd({ error: err });
      if (over && this.current?.sessionId === mine.sessionId) {
        this.refused = { sessionId: mine.sessionId, error: over.error };
        // The store's copy, while it is the one refused, is of no use to another tab or visit either.
        await this.clearStored((saved) => saved.refreshToken === from.refreshToken).catch(() => {
          // A store that cannot be written: the refusal is still the answer.
        });
      }
      throw err;
    }
    // Signed out, or into another session, while the refresh was on its way: its tokens are dropped, so
    // that they neither bring the ended session back nor replace the new one (here or in the store).
    if (this.current?.sessionId !== mine.sessionId) throw signedOut();
    // Not saved over another session the store holds now (an account signed in since in another tab:
    // the one a tab opened next starts as); nor when the store cannot save (see keep()).
    const holds = this.opts.store ? await this.opts.store.load() : null;
    if (holds && holds.sessionId !== mine.sessionId) {
      this.use(renewed);
      return renewed;
    }
    return this.keep(renewed);
  }

  /** Drops the session here, and from the store while it holds that session (not another tab's newer one). */
  private async forget(ended: Session | null) {
    this.close();
    this.current = null;
    if (ended) await this.clearStored((saved) => saved.sessionId === ended.sessionId);
  }

  /** Empties the store, if any, while what it holds is `which`. */
  private async clearStored(which: (saved: Session) => boolean) {
    const store = this.opts.store;
    const saved = store ? await store.load() : null;
    if (store && saved && which(saved)) await store.save(null);
  }

  /** A new session of the app's (sign-in, adopt()): the client runs again if close() stopped it. */
  private start(session: Session): Promise<Session> {
    this.stopped = false;
    return this.keep(session);
  }

  /**
   * Makes `session` current and saves it to the store, if any. A store that cannot save (storage full)
   * leaves this client working on its own: the session was made all the same, and failing the sign-in
   * would leave the app to make another.
   */
  private async keep(session: Session): Promise<Session> {
    this.use(session);
    try {
      await this.opts.store?.save(session);
    } catch {
      // See above.
    }
    return session;
  }

  /**
   * Makes `session` current: its refresh is due at `refreshAt` of the time it has left (unless close()
   * stopped the client), and the store is watched for others' refreshes.
   */
  private use(session: Session) {
    this.current = session;
    if (this.stopped) return;
    this.scheduleRefresh(Math.max(0, (session.expiresAt - Date.now()) * (this.opts.refreshAt ?? 0.8)));
    this.unwatch ??= this.opts.store?.watch?.((saved) => {
      const current = this.current;
      // Another client's refresh of this session: take its tokens (newer ones expire later).
      if (
        saved &&
        current &&
        saved.sessionId === current.sessionId &&
        saved.refreshToken !== current.refreshToken &&
        saved.expiresAt >= current.expiresAt
      )
        this.use(saved);
    });
  }

  private scheduleRefresh(delayMs: number) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.refresh().catch(() => {
        // Tried again by refresh() itself unless the session is over (see there).
      });
    }, delayMs);
    unref(this.refreshTimer);
  }
}

function signedOut(): ParleyError {
  return new ParleyError("unauthorized", "signed out while the token was being refreshed");
}

function samePositions(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function sessionOf(res: TokenResponse): Session {
  return {
    user: res.user,
    sessionId: res.session_id,
    accessToken: res.access_token,
    refreshToken: res.refresh_token,
    expiresAt: Date.now() + res.expires_in * 1000,
  };
}

/** Bun and Node timers can be unref'd so that a pending refresh does not keep a process alive. */
function unref(timer: unknown) {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}
