// ParleyClient: the SDK's front door for Bun and browsers. Signs in, keeps the tokens fresh (refreshing
// at 80% of their lifetime), makes REST calls and opens the realtime connection.

import type { Encoding } from "../realtime/frames.ts";
import { ParleyError } from "./errors.ts";
import type { Handler, OpenInfo, RealtimeEventType } from "./events.ts";
import { RealtimeConnection, type RealtimeOptions } from "./realtime.ts";
import { type Fetch, RestClient } from "./rest.ts";
import type { SignInInput, SignUpInput, TokenResponse, UserView } from "./types.ts";

export { ParleyError } from "./errors.ts";
export type * from "./events.ts";
export { type Ack, type MessageInput, type PresenceStatus, RealtimeConnection } from "./realtime.ts";
export { RestClient } from "./rest.ts";
export type * from "./types.ts";

export interface ParleyClientOptions {
  baseUrl: string;
  /** Realtime frames: binary MessagePack (default) or JSON text. */
  encoding?: Encoding;
  /** Fraction of the access token's lifetime after which it is refreshed. Default 0.8. */
  refreshAt?: number;
  requestTimeoutMs?: number;
  backoff?: RealtimeOptions["backoff"];
  fetch?: Fetch;
  WebSocket?: typeof WebSocket;
}

export interface Session {
  user: UserView;
  sessionId: string;
  accessToken: string;
  refreshToken: string;
  /** Local time (ms) at which the access token expires. */
  expiresAt: number;
}

export class ParleyClient {
  readonly rest: RestClient;
  private opts: ParleyClientOptions;
  private current: Session | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: Promise<Session> | null = null;
  private connection: RealtimeConnection | null = null;
  private handlers: { type: RealtimeEventType; handler: Handler<RealtimeEventType> }[] = [];

  constructor(opts: ParleyClientOptions) {
    const refreshAt = opts.refreshAt ?? 0.8;
    if (!(refreshAt > 0 && refreshAt < 1))
      throw new TypeError(`refreshAt: expected 0 < x < 1, got ${refreshAt}`);
    if (opts.encoding !== undefined && opts.encoding !== "msgpack" && opts.encoding !== "json")
      throw new TypeError(`encoding: expected msgpack or json, got ${String(opts.encoding)}`);
    this.opts = { ...opts, refreshAt };
    this.rest = new RestClient({
      baseUrl: opts.baseUrl,
      fetch: opts.fetch,
      token: () => this.current?.accessToken,
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
    return this.adopt(await this.rest.signup(input));
  }

  async signin(input: SignInInput): Promise<Session> {
    return this.adopt(await this.rest.signin(input));
  }

  /** Trades the refresh token for new tokens; concurrent callers share one request. */
  refresh(): Promise<Session> {
    const session = this.current;
    if (!session) return Promise.reject(new ParleyError("unauthorized", "not signed in"));
    this.refreshing ??= this.rest
      .refresh(session.refreshToken)
      .then((res) => this.adopt(res))
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** Ends the session on the server and locally. */
  async signout(): Promise<void> {
    try {
      if (this.current) await this.rest.signout();
    } finally {
      this.close();
      this.current = null;
    }
  }

  /** Adopts tokens obtained elsewhere (a magic link, a stored session). */
  adopt(res: TokenResponse): Session {
    this.current = {
      user: res.user,
      sessionId: res.session_id,
      accessToken: res.access_token,
      refreshToken: res.refresh_token,
      expiresAt: Date.now() + res.expires_in * 1000,
    };
    this.scheduleRefresh(res.expires_in * 1000 * (this.opts.refreshAt ?? 0.8));
    return this.current;
  }

  /** Handlers registered here survive connect() / close() cycles. */
  on<K extends RealtimeEventType>(type: K, handler: Handler<K>): () => void {
    const entry = { type, handler: handler as Handler<RealtimeEventType> };
    this.handlers.push(entry);
    const off = this.connection?.on(type, handler);
    return () => {
      off?.();
      this.handlers = this.handlers.filter((h) => h !== entry);
    };
  }

  /**
   * Opens the realtime connection. Unless positions are given, it starts from each conversation's
   * current last_seq and resumes from there at once, so nothing sent while it was opening is missed.
   */
  async connect(opts: { positions?: Record<string, number> } = {}): Promise<OpenInfo> {
    const session = this.current;
    if (!session) throw new ParleyError("unauthorized", "sign in before connecting");
    if (this.connection) throw new ParleyError("bad_request", "already connected");
    let positions = opts.positions;
    if (!positions) {
      positions = {};
      for (const c of await this.rest.conversations.all()) positions[c.id] = c.last_seq;
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
      backoff: this.opts.backoff,
      WebSocket: this.opts.WebSocket,
    });
    for (const { type, handler } of this.handlers) connection.on(type, handler);
    this.connection = connection;
    try {
      return await connection.connect();
    } catch (err) {
      this.connection = null;
      throw err;
    }
  }

  /** Stops everything the client started: the realtime connection and the token refresh timer. */
  close() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.connection?.close();
    this.connection = null;
  }

  private async freshToken(): Promise<string> {
    const session = this.current;
    if (!session) throw new ParleyError("unauthorized", "signed out");
    if (session.expiresAt - Date.now() < 5000) return (await this.refresh()).accessToken;
    return session.accessToken;
  }

  private scheduleRefresh(delayMs: number) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch((err: unknown) => {
        // A spent or revoked refresh token will not work later either; anything else is tried again.
        const terminal = err instanceof ParleyError && err.status === 401;
        if (!terminal && this.current) this.scheduleRefresh(5000);
      });
    }, delayMs);
    unref(this.refreshTimer);
  }
}

/** Bun and Node timers can be unref'd so that a pending refresh does not keep a process alive. */
function unref(timer: unknown) {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}
