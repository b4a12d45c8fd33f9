// The life of a realtime connection's socket: opened with a fresh token, its hello, a heartbeat that finds
// a dead link (heartbeat.ts), and after a close either a reconnect with jittered backoff (backoff.ts) or
// the end (close(), a first connection that failed, the session over). What travels on the socket is the
// connection's (realtime.ts).

import {
  BEARER_PREFIX,
  ENCODINGS,
  type Encoding,
  type ServerFrame,
  SUBPROTOCOLS,
} from "../realtime/frames.ts";
import { Backoff } from "./backoff.ts";
import { ParleyError } from "./errors.ts";
import type { OpenInfo, RealtimeEventMap, RealtimeEventType } from "./events.ts";
import { Heartbeat } from "./heartbeat.ts";
import type { RealtimeOptions } from "./realtime.ts";
import { type Cause, sessionEnd } from "./session-end.ts";
import { decodeFrame } from "./wire.ts";

export type Hello = Extract<ServerFrame, { type: "hello" }>;

/** What the connection does at each turn of the socket's life. */
export interface LinkHooks {
  /** A new socket said hello: what lives on it starts (limits, resumes, requests waiting). */
  hello(frame: Hello): void;
  /** Any other frame the socket brought. */
  frame(frame: ServerFrame): void;
  /** A heartbeat is due. */
  ping(): void;
  /** The socket closed with `code`; nothing is torn down yet. */
  closed(code: number): void;
  /** The socket is gone, and what lived on it goes too. */
  left(): void;
  /** A reconnect will come: requests wait for it, or fail if they may not be sent twice. */
  dropped(code: number): void;
  /** Stopped for good: every request fails with `err`. */
  stopped(err: ParleyError): void;
  emit<K extends RealtimeEventType>(type: K, payload: RealtimeEventMap[K]): void;
}

export class Link {
  /** Which encoding the server chose (its answer to our subprotocols). */
  encoding: Encoding;
  private ws: WebSocket | null = null;
  private ready = false;
  /**
   * This run (since connect()) has had a hello: a connection that fails is tried again, and the next
   * hello is a reconnect. A connect() after close() is a first connect again, under the same rules.
   */
  private opened = false;
  /**
   * new: connect() not called yet (requests wait for it). running: connecting, connected or waiting to
   * reconnect. stopped: closed, or ended for good; only connect() starts it again.
   */
  private phase: "new" | "running" | "stopped" = "new";
  /** Why the connection ended for good (session over), when it did. */
  private endedBy: ParleyError | null = null;
  private backoff: Backoff;
  /** A session check is under way (after a reconnect that failed before its hello). */
  private checking = false;
  private heartbeat = new Heartbeat(
    () => this.hooks.ping(),
    () => this.leaveDeadLink(),
  );
  /** When the current connection said hello. */
  private upSince = 0;
  /**
   * Leaves a socket that has not said hello in time: a server stuck before its hello, or an upgrade lost
   * on a link that swallows packets, would otherwise hold connect() (and every request) for good, since
   * the heartbeat starts only at the hello.
   */
  private helloTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Counts the runs (connect() from new or stopped): work begun for a run that has ended since (a token
   * or a session check still on its way when close() came) sees that and leaves the new run alone.
   */
  private run = 0;
  /** The connect() calls waiting for the next hello. */
  private waiting: { resolve(info: OpenInfo): void; reject(err: ParleyError): void }[] = [];
  private Socket: typeof WebSocket;

  constructor(
    /** The connection's own options object: a token() replaced on it is the one asked next. */
    private opts: RealtimeOptions,
    private url: string,
    /** The encoding asked for. */
    private wanted: Encoding,
    private hooks: LinkHooks,
  ) {
    this.encoding = wanted;
    this.backoff = new Backoff(opts);
    // Read off globalThis: a bare `WebSocket` throws a ReferenceError where there is none (Node.js 20).
    const Socket: typeof WebSocket | undefined = opts.WebSocket ?? globalThis.WebSocket;
    if (!Socket) {
      throw new ParleyError(
        "bad_request",
        "this runtime has no WebSocket: pass one in the WebSocket option (on Node.js 20, the ws package's)",
      );
    }
    this.Socket = Socket;
  }

  /** The current socket, open or opening; null between sockets. */
  get socket(): WebSocket | null {
    return this.ws;
  }

  /** True between `hello` and the socket closing. */
  get connected(): boolean {
    return this.ready;
  }

  get stopped(): boolean {
    return this.phase === "stopped";
  }

  /** Why the connection ended for good (its session is over), or null. */
  get endReason(): ParleyError | null {
    return this.endedBy;
  }

  /**
   * Opens the socket; resolves on the server's hello. A connection on its way already (connecting, or
   * waiting to reconnect) is joined, never doubled: a reconnect waiting for its time is made at once, and
   * the call resolves on that hello. Connected, it fails with bad_request.
   */
  connect(): Promise<OpenInfo> {
    if (this.ready) return Promise.reject(new ParleyError("bad_request", "already connected"));
    const joining = this.phase === "running";
    if (!joining) {
      this.phase = "running";
      this.endedBy = null;
      this.run++;
      this.opened = false;
      this.backoff.reset();
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!joining) void this.open();
      else if (this.backoff.waiting) {
        this.backoff.cancel();
        void this.open();
      }
    });
  }

  /** Closes for good; see RealtimeConnection.close(). */
  close() {
    this.stop(new ParleyError("closed", "the connection was closed"), 1000, "client closed");
  }

  /** The session is over, learnt elsewhere; see RealtimeConnection.endSession(). */
  endSession(error: ParleyError) {
    this.endIfOver({ error });
  }

  /** A request was answered: this connection works, and the next reconnect starts from minMs. */
  answered() {
    this.backoff.reset();
  }

  private async open() {
    const run = this.run;
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      // A refresh the server refused (session revoked, refresh token reused) will not work later either.
      if (this.stopped || run !== this.run || this.endIfOver({ error: err })) return;
      return this.onClose(1006, err instanceof Error ? err.message : "no token");
    }
    if (this.stopped || run !== this.run) return;
    // Records where the server has them; a server without them answers the plain msgpack offered next.
    const offered: Encoding[] = this.wanted === "msgpackr" ? ["msgpackr", "msgpack"] : [this.wanted];
    const protocols = offered.map((e) => SUBPROTOCOLS[e]);
    let ws: WebSocket;
    try {
      ws = new this.Socket(this.url, [...protocols, `${BEARER_PREFIX}${token}`]);
    } catch (err) {
      // Refused before any socket (a browser's SecurityError, a WebSocket given that rejects the
      // subprotocols): a failed connection like any other, or connect() would wait for good.
      return this.onClose(1006, err instanceof Error ? err.message : "no socket");
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.helloTimer = setTimeout(() => {
      this.helloTimer = undefined;
      if (this.ws === ws && !this.ready) this.onClose(1006, "no hello");
    }, this.opts.helloTimeoutMs ?? 10_000);
    ws.onopen = () => {
      this.encoding = ENCODINGS.find((e) => SUBPROTOCOLS[e] === ws.protocol) ?? "json";
    };
    ws.onmessage = (e: MessageEvent) => {
      if (this.ws !== ws) return;
      this.heartbeat.heard();
      let frame: unknown;
      try {
        frame = decodeFrame(e.data, this.encoding);
      } catch {
        return this.hooks.emit(
          "error",
          new ParleyError("bad_frame", "the server sent a frame we cannot read"),
        );
      }
      if (frame && typeof frame === "object" && typeof (frame as { type?: unknown }).type === "string") {
        const known = frame as ServerFrame;
        if (known.type === "hello") return this.onHello(known);
        try {
          this.hooks.frame(known);
        } catch {
          // A frame not as the protocol says (a key exchange whose payload is no bytes): told, not thrown
          // out of the socket's handler, where it would be an uncaught error.
          this.hooks.emit(
            "error",
            new ParleyError("bad_frame", `the server sent a ${known.type} frame we cannot read`),
          );
        }
      }
    };
    ws.onclose = (e: CloseEvent) => {
      if (this.ws === ws) this.onClose(e.code, e.reason);
    };
  }

  private onHello(frame: Hello) {
    const reconnected = this.opened;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.opened = true;
    this.ready = true;
    this.upSince = Date.now();
    this.heartbeat.start(frame.heartbeat_interval);
    this.hooks.hello(frame);
    const info: OpenInfo = {
      user_id: frame.user_id,
      session_id: frame.session_id,
      server_time: frame.server_time,
      heartbeat_interval: frame.heartbeat_interval,
      reconnected,
    };
    this.hooks.emit("open", info);
    for (const waiter of this.waiting.splice(0)) waiter.resolve(info);
  }

  /** The socket closed, or was left as dead: end for good, or try again. */
  private onClose(code: number, reason: string) {
    const hadHello = this.ready;
    if (hadHello) this.backoff.closedAfter(this.upSince);
    this.hooks.closed(code);
    // A socket the server closed is closed already; a dead link's is closed here.
    this.teardown(4000, reason);
    if (this.stopped || this.endIfOver({ close: code, reason })) return;
    // A refused upgrade (a session revoked while we were away, say) looks like any connection that failed
    // (1006): ask the server over REST whether the session is still there. A first connect() fails with
    // the answer; a reconnect does not wait for it (on a dead link the check may take its whole timeout).
    if (!hadHello && this.opts.checkSession) {
      if (!this.opened) return void this.checkThenRetry(code, reason);
      this.checkInBackground();
    }
    this.retry(code, reason);
  }

  /** After a failed or dropped connection: the first connection of a run is not retried; later ones are. */
  private retry(code: number, reason: string) {
    if (!this.opened)
      return this.stop(new ParleyError("closed", `could not connect (${code})`), code, reason);
    this.hooks.dropped(code);
    this.hooks.emit("close", { code, reason, reconnecting: true });
    this.backoff.schedule(() => void this.open());
  }

  private async checkThenRetry(code: number, reason: string) {
    const run = this.run;
    try {
      await this.opts.checkSession?.();
    } catch (err) {
      // Only an answer that the session is over ends it; a check that could not be made (offline) does not.
      if (this.endIfOver({ error: err })) return;
    }
    if (!this.stopped && run === this.run) this.retry(code, reason);
  }

  /** The session check beside the reconnects, one at a time; a session found over ends them. */
  private checkInBackground() {
    const check = this.opts.checkSession;
    if (this.checking || !check) return;
    this.checking = true;
    check()
      .catch((err: unknown) => void this.endIfOver({ error: err }))
      .finally(() => {
        this.checking = false;
      });
  }

  /**
   * Ends the connection for good when `cause` says the session is over (see sessionEnd): requests waiting
   * and later calls fail with the reason's code, and the final close event carries it. Answers whether the
   * session is over; once the connection is stopped there is nothing more to end.
   */
  private endIfOver(cause: Cause): boolean {
    const over = sessionEnd(cause);
    if (!over) return false;
    if (!this.stopped) this.stop(over.error, over.code, over.reason, true);
    return true;
  }

  /**
   * Stops for good: the socket goes (teardown), requests still waiting and a connect() under way fail
   * with `err`, as do later calls, and one final close event says so (with `err` when the session ended).
   * A connection that never started (no connect()) has no close to tell of.
   */
  private stop(err: ParleyError, code: number, reason: string, sessionEnded = false) {
    const wasRunning = this.phase === "running";
    this.teardown(1000, sessionEnded ? "session ended" : "client closed");
    this.phase = "stopped";
    if (sessionEnded) this.endedBy = err;
    this.hooks.stopped(err);
    for (const waiter of this.waiting.splice(0)) waiter.reject(err);
    if (!wasRunning) return;
    this.hooks.emit("close", { code, reason, reconnecting: false, ...(sessionEnded ? { error: err } : {}) });
  }

  /**
   * Leaves the current socket and everything that lived with it: the heartbeat, a reconnect waiting for
   * its time, and what the connection kept for it (hooks.left). The socket's handlers go too, so nothing
   * it says later reaches us: its close on a dead link would come only when the close handshake times out.
   * It is closed with `code` if still open.
   */
  private teardown(code: number, reason: string) {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.backoff.cancel();
    this.heartbeat.stop();
    this.hooks.left();
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(code, reason);
    } catch {
      // Closing a socket that is already closing may throw; it is dropped all the same.
    }
  }

  /**
   * The socket's own close event would come only when its close handshake times out (half a minute and
   * more on a link that swallows packets): the close path runs now, and leaves the socket to itself.
   */
  private leaveDeadLink() {
    if (this.ws) this.onClose(1006, "heartbeat timeout");
  }
}
