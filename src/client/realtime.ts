// The realtime connection: one WebSocket to /ws/{user_id}/{session_id} (MessagePack by default), typed
// events, requests answered by ref, frames kept within the limits the hello gives (size, rate), heartbeat,
// and automatic reconnect with jittered backoff that resumes every conversation from the last seq seen
// (catching up over REST when the server says resync), until the session is over. A conversation the user
// is added to starts where they were added.

import {
  BEARER_PREFIX,
  CLOSE,
  ENCODINGS,
  type Encoding,
  type ServerFrame,
  SUBPROTOCOLS,
} from "../realtime/frames.ts";
import { Catchup, replayedEvent } from "./catchup.ts";
import { ParleyError } from "./errors.ts";
import {
  type ConversationEvent,
  Emitter,
  fromWire,
  type Handler,
  type OpenInfo,
  type RealtimeEventType,
} from "./events.ts";
import { Outbox, type Queued } from "./outbox.ts";
import { Requests, tooLarge } from "./requests.ts";
import type { RestClient } from "./rest.ts";
import type { ConversationView, SendMessage } from "./types.ts";
import { byteSize, decodeFrame, encodeFrame, toBytes } from "./wire.ts";

export interface RealtimeOptions {
  /** The server's http(s) base URL; the socket goes to the ws(s) twin. */
  baseUrl: string;
  userId: string;
  sessionId: string;
  /** The current access token, asked for at every (re)connect. */
  token: () => string | Promise<string>;
  encoding?: Encoding;
  /** Used to page `/events` when the server answers `resync`. */
  rest?: RestClient;
  /** Positions to resume from on the first connect (e.g. each conversation's last_seq). */
  positions?: Record<string, number>;
  /** How long a request waits for its ack / ok. Default 10 s. */
  requestTimeoutMs?: number;
  /**
   * Reconnect delays: doubling from minMs to maxMs, each with random jitter. Default 500 ms .. 30 s. They
   * start again from minMs once a connection has been up `resetAfterMs` (default 10 s) or has had a
   * request answered, not at every hello: a server that closes each connection soon after it opens is not
   * met with a reconnect every minMs.
   */
  backoff?: { minMs?: number; maxMs?: number; resetAfterMs?: number };
  /** Replaces the global WebSocket. */
  WebSocket?: typeof WebSocket;
  /**
   * Asked after a connection fails before its hello, since a refused upgrade (a session revoked while the
   * client was away) looks like any failed connection: resolves while the session is alive, rejects with
   * the server's 401 ParleyError once it is over, which ends the connection with that code.
   */
  checkSession?: () => Promise<void>;
}

export type MessageInput = Omit<SendMessage, "client_msg_id"> & { client_msg_id?: string };
export interface Ack {
  client_msg_id: string;
  message_id: string;
  seq: number;
}
export type PresenceStatus = "online" | "away" | "dnd" | "offline";

/** Entries per resume frame, well under the server's 1000 and its frame size limit. */
const RESUME_CHUNK = 500;
const CATCHUP_PAGE = 500;
/** A request refused as rate_limited is sent again this many times (after growing pauses) before failing. */
const RATE_RETRIES = 5;

export class RealtimeConnection {
  readonly encoding: Encoding;
  private opts: RealtimeOptions;
  private url: string;
  private emitter = new Emitter();
  private catchup: Catchup;
  private ws: WebSocket | null = null;
  /** Which encoding the server actually chose (its answer to our subprotocols). */
  private wireEncoding: Encoding;
  private ready = false;
  private everOpened = false;
  /**
   * new: connect() not called yet (requests wait for it). running: connecting, connected or waiting to
   * reconnect. stopped: closed, or ended for good; only connect() starts it again.
   */
  private phase: "new" | "running" | "stopped" = "new";
  /** Why the connection ended for good (session over), when it did. */
  private endedBy: ParleyError | null = null;
  private attempt = 0;
  /** A session check is under way (after a reconnect that failed before its hello). */
  private checking = false;
  private nextRef = 1;
  private pending: Requests;
  /** ref of a resume frame -> its conversations still waiting for resumed / resync / error, in order. */
  private resumeBatches = new Map<number, string[]>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private lastFrameAt = 0;
  /** When the current connection said hello. */
  private upSince = 0;
  /** The largest frame the server reads (its hello's max_payload), and a bound a 1009 close taught us. */
  private maxPayload = Number.POSITIVE_INFINITY;
  private learnedMax = Number.POSITIVE_INFINITY;
  /** The largest frame written on the current socket, and the request it was (for a 1009 close). */
  private largest: { bytes: number; ref?: number } = { bytes: 0 };
  private outbox = new Outbox(
    (frame) => this.write(frame),
    (ref) => this.pending.has(ref),
  );
  private firstOpen: { resolve(info: OpenInfo): void; reject(err: ParleyError): void } | null = null;

  constructor(opts: RealtimeOptions) {
    const base = new URL(opts.baseUrl);
    if (base.protocol !== "http:" && base.protocol !== "https:")
      throw new TypeError(`baseUrl: expected http or https, got ${base.protocol}`);
    if (!opts.userId) throw new TypeError("userId: required");
    if (!opts.sessionId) throw new TypeError("sessionId: required");
    const encoding = opts.encoding ?? "msgpackr";
    if (!ENCODINGS.includes(encoding))
      throw new TypeError(`encoding: expected ${ENCODINGS.join(", ")}; got ${String(encoding)}`);
    this.opts = opts;
    this.pending = new Requests(opts.requestTimeoutMs ?? 10_000);
    this.encoding = encoding;
    this.wireEncoding = encoding;
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    const root = base.href.replace(/\/+$/, "");
    this.url = `${root}/ws/${encodeURIComponent(opts.userId)}/${encodeURIComponent(opts.sessionId)}`;
    this.catchup = new Catchup(
      opts.userId,
      (event) => this.emit("event", event),
      (id) => this.resumeFrom([id]),
      (id) => void this.locate(id),
    );
    for (const [id, seq] of Object.entries(opts.positions ?? {})) this.catchup.positions.set(id, seq);
  }

  /** The highest seq seen per conversation. */
  get positions(): Record<string, number> {
    return Object.fromEntries(this.catchup.positions);
  }

  /** Ended for good: its session is over, and it will not connect again (a new one is needed). */
  get ended(): boolean {
    return this.endedBy !== null;
  }

  /** True between `hello` and the socket closing. */
  get connected(): boolean {
    return this.ready;
  }

  private get stopped(): boolean {
    return this.phase === "stopped";
  }

  /** The encoding in use: what the server chose from the subprotocols offered. */
  get negotiatedEncoding(): Encoding {
    return this.wireEncoding;
  }

  on<K extends RealtimeEventType>(type: K, handler: Handler<K>): () => void {
    return this.emitter.on(type, handler);
  }

  /** Opens the socket; resolves on the server's hello. A first connection that fails is not retried. */
  connect(): Promise<OpenInfo> {
    if (this.ws) return Promise.reject(new ParleyError("bad_request", "already connected"));
    this.phase = "running";
    this.endedBy = null;
    return new Promise((resolve, reject) => {
      this.firstOpen = { resolve, reject };
      void this.open();
    });
  }

  /**
   * Closes for good: no reconnect; requests still waiting, a connect() under way and later calls fail with
   * `closed`, and the final close event (1000) comes at once.
   */
  close() {
    this.stop(new ParleyError("closed", "the connection was closed"), 1000, "client closed");
  }

  /** Sends a message; resolves with the ack once it is stored. Survives reconnects (same client_msg_id). */
  async send(conversationId: string, input: MessageInput): Promise<Ack> {
    const client_msg_id = input.client_msg_id ?? crypto.randomUUID();
    // In this order (type, conversation_id, client_msg_id, content): a record of parley.msgpackr.1. The
    // input cannot change what the frame is (assigning keeps a key's place).
    const { client_msg_id: _, ...rest } = input;
    const frame: Record<string, unknown> = { type: "", conversation_id: "", client_msg_id, ...rest };
    frame.type = "message";
    frame.conversation_id = conversationId;
    const ack = (await this.request(frame, true)) as Extract<ServerFrame, { type: "ack" }>;
    return { client_msg_id: ack.client_msg_id, message_id: ack.message_id, seq: ack.seq };
  }

  /** Typing indicators have no reply. */
  typing(conversationId: string, on: boolean) {
    this.transmit({ type: on ? "typing_start" : "typing_stop", conversation_id: conversationId });
  }

  /** Delivered up to seq. */
  async ack(conversationId: string, seq: number): Promise<void> {
    await this.request({ type: "message_ack", conversation_id: conversationId, seq });
  }

  async read(conversationId: string, seq: number): Promise<void> {
    await this.request({ type: "message_read", conversation_id: conversationId, seq });
  }

  async react(messageId: string, emoji: string, op: "add" | "remove" = "add"): Promise<void> {
    await this.request({ type: "reaction", message_id: messageId, emoji, op });
  }

  async presence(status: PresenceStatus): Promise<void> {
    await this.request({ type: "presence_update", status });
  }

  async keyExchange(toUserId: string, payload: Uint8Array, toDeviceId?: string): Promise<void> {
    const frame: Record<string, unknown> = {
      type: "key_exchange",
      to_user_id: toUserId,
      payload: toBytes(payload),
    };
    if (toDeviceId) frame.to_device_id = toDeviceId;
    await this.request(frame);
  }

  async subscribe(channel: string): Promise<void> {
    await this.request({ type: "subscribe", channel });
  }

  // --- requests ---

  private request(frame: Record<string, unknown>, retry = false): Promise<ServerFrame> {
    if (this.stopped)
      return Promise.reject(this.endedBy ?? new ParleyError("closed", "the connection is closed"));
    const ref = this.nextRef++;
    const answered = this.pending.add(ref, { ...frame, ref }, retry);
    // Before hello the frame waits; flushPending sends it once the server is ready.
    if (this.ready) this.sendPending(ref);
    return answered;
  }

  private settle(ref: unknown, frame: ServerFrame): boolean {
    if (typeof ref !== "number") return false;
    const pending = this.pending.get(ref);
    if (!pending) return false;
    if (frame.type === "error" && frame.code === "rate_limited" && pending.limited < RATE_RETRIES) {
      // Refused before the server did anything with it: sent again once its bucket has had time to refill.
      pending.limited++;
      pending.state = "waiting";
      this.outbox.hold(this.outbox.interval * 2 ** (pending.limited - 1));
      this.sendPending(ref);
      return true;
    }
    // An answered request: this connection works, and the next reconnect starts from minMs.
    if (frame.type !== "error") this.attempt = 0;
    this.pending.answer(ref, frame);
    return true;
  }

  private flushPending() {
    for (const [ref, pending] of this.pending.entries())
      if (pending.state === "waiting") this.sendPending(ref);
  }

  private sendPending(ref: number) {
    const pending = this.pending.get(ref);
    if (!pending) return;
    const outcome = this.transmit(pending.frame, ref);
    if (outcome === "queued") pending.state = "queued";
    else if (outcome === "too_large") this.pending.fail(ref, tooLarge(pending.frame, this.limit));
  }

  /** The largest frame to write: what the server said, or less if a 1009 close showed it reads less. */
  private get limit(): number {
    return Math.min(this.maxPayload, this.learnedMax);
  }

  /**
   * Queues a frame for the open socket (`ref`: the request it is), paced under the server's frame rate; one
   * over the server's size limit is not queued (it would close the socket).
   */
  private transmit(frame: Record<string, unknown>, ref?: number): "queued" | "offline" | "too_large" {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return "offline";
    const data = encodeFrame(frame, this.wireEncoding);
    const bytes = byteSize(data);
    if (bytes > this.limit) return "too_large";
    this.outbox.push({ data, bytes, ref });
    return "queued";
  }

  /** The outbox's turn for a frame. */
  private write(frame: Queued) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(frame.data);
    if (frame.bytes > this.largest.bytes) this.largest = { bytes: frame.bytes, ref: frame.ref };
    const pending = frame.ref === undefined ? undefined : this.pending.get(frame.ref);
    if (pending) pending.state = "sent";
  }

  // --- socket lifecycle ---

  private async open() {
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      // A refresh the server refused (session revoked, refresh token reused) will not work later either.
      if (this.stopped || this.endIfOver({ error: err })) return;
      return this.onClose(1006, err instanceof Error ? err.message : "no token");
    }
    if (this.stopped) return;
    // Records where the server has them; a server without them answers the plain msgpack offered next.
    const offered: Encoding[] = this.encoding === "msgpackr" ? ["msgpackr", "msgpack"] : [this.encoding];
    const protocols = offered.map((e) => SUBPROTOCOLS[e]);
    const Socket = this.opts.WebSocket ?? WebSocket;
    const ws = new Socket(this.url, [...protocols, `${BEARER_PREFIX}${token}`]);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.largest = { bytes: 0 };
    ws.onopen = () => {
      this.wireEncoding = ENCODINGS.find((e) => SUBPROTOCOLS[e] === ws.protocol) ?? "json";
    };
    ws.onmessage = (e: MessageEvent) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame: unknown;
      try {
        frame = decodeFrame(e.data, this.wireEncoding);
      } catch {
        return this.emit("error", new ParleyError("bad_frame", "the server sent a frame we cannot read"));
      }
      if (frame && typeof frame === "object" && typeof (frame as { type?: unknown }).type === "string") {
        this.onFrame(frame as ServerFrame);
      }
    };
    ws.onclose = (e: CloseEvent) => {
      if (this.ws === ws) this.onClose(e.code, e.reason);
    };
  }

  /** The socket closed, or was left as dead: end for good, or try again. */
  private onClose(code: number, reason: string) {
    const hadHello = this.ready;
    const resetAfter = this.opts.backoff?.resetAfterMs ?? 10_000;
    if (hadHello && Date.now() - this.upSince >= resetAfter) this.attempt = 0;
    if (code === CLOSE.tooLarge) this.onTooLarge();
    // A socket the server closed is closed already; a dead link's is closed here.
    this.teardown(4000, reason);
    if (this.stopped || this.endIfOver({ close: code, reason })) return;
    // A refused upgrade (a session revoked while we were away, say) looks like any connection that failed
    // (1006): ask the server over REST whether the session is still there. A first connect() fails with
    // the answer; a reconnect does not wait for it (on a dead link the check may take its whole timeout).
    if (!hadHello && this.opts.checkSession) {
      if (!this.everOpened) return void this.checkThenRetry(code, reason);
      this.checkInBackground();
    }
    this.retry(code, reason);
  }

  /** After a failed or dropped connection: the first connection is not retried; later ones are. */
  private retry(code: number, reason: string) {
    if (!this.everOpened)
      return this.stop(new ParleyError("closed", `could not connect (${code})`), code, reason);
    this.pending.dropped(`the connection dropped (${code}) before an answer`);
    this.emit("close", { code, reason, reconnecting: true });
    this.scheduleReconnect();
  }

  private async checkThenRetry(code: number, reason: string) {
    try {
      await this.opts.checkSession?.();
    } catch (err) {
      // Only an answer that the session is over ends it; a check that could not be made (offline) does not.
      if (this.endIfOver({ error: err })) return;
    }
    if (!this.stopped) this.retry(code, reason);
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
    this.pending.failAll(err);
    this.firstOpen?.reject(err);
    this.firstOpen = null;
    if (!wasRunning) return;
    this.emit("close", { code, reason, reconnecting: false, ...(sessionEnded ? { error: err } : {}) });
  }

  /**
   * Leaves the current socket and everything that lived with it: the heartbeat, a reconnect waiting for
   * its time, the frames not yet written, and the resumes and catch-ups under way (their held events go;
   * the next resume replays them from the same positions). The socket's handlers go too, so nothing it
   * says later reaches us: its close on a dead link would come only when the close handshake times out.
   * It is closed with `code` if still open.
   */
  private teardown(code: number, reason: string) {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    clearTimeout(this.reconnectTimer);
    this.stopHeartbeat();
    this.outbox.clear();
    this.catchup.abandon();
    this.resumeBatches.clear();
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

  private scheduleReconnect() {
    const min = this.opts.backoff?.minMs ?? 500;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    const ceiling = Math.min(max, min * 2 ** this.attempt);
    this.attempt++;
    // Equal jitter: half fixed, half random, so a server restart is not met by every client at once.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  private onHello(frame: Extract<ServerFrame, { type: "hello" }>) {
    const reconnected = this.everOpened;
    this.everOpened = true;
    this.ready = true;
    this.upSince = Date.now();
    if (typeof frame.max_payload === "number" && frame.max_payload > 0) this.maxPayload = frame.max_payload;
    this.outbox.limit(frame.rate_per_second, frame.rate_burst);
    this.startHeartbeat(frame.heartbeat_interval);
    this.resume();
    if (reconnected) void this.discover();
    this.flushPending();
    const info: OpenInfo = {
      user_id: frame.user_id,
      session_id: frame.session_id,
      server_time: frame.server_time,
      heartbeat_interval: frame.heartbeat_interval,
      reconnected,
    };
    this.emit("open", info);
    this.firstOpen?.resolve(info);
    this.firstOpen = null;
  }

  /**
   * The server closed 1009, a frame over its limit. The largest frame written on that socket is over it too
   * (every frame the server read was under it, and the one it refused is no larger): that request fails
   * rather than being sent again at the reconnect, and no frame as large is written again.
   */
  private onTooLarge() {
    const { bytes, ref } = this.largest;
    if (bytes === 0) return;
    this.learnedMax = Math.min(this.learnedMax, bytes - 1);
    const pending = ref === undefined ? undefined : this.pending.get(ref);
    if (ref !== undefined && pending) this.pending.fail(ref, tooLarge(pending.frame, this.learnedMax));
  }

  private startHeartbeat(seconds: number) {
    this.stopHeartbeat();
    const every = Math.max(1, seconds) * 1000;
    this.heartbeat = setInterval(() => {
      // Nothing heard for two beats: the link is dead even if no close came; reconnect.
      if (Date.now() - this.lastFrameAt > 2 * every + 5000) this.leaveDeadLink();
      else this.transmit({ type: "ping" });
    }, every);
  }

  /**
   * The socket's own close event would come only when its close handshake times out (half a minute and
   * more on a link that swallows packets): the close path runs now, and leaves the socket to itself.
   */
  private leaveDeadLink() {
    if (this.ws) this.onClose(1006, "heartbeat timeout");
  }

  private stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  // --- frames ---

  private onFrame(frame: ServerFrame) {
    switch (frame.type) {
      case "hello":
        return this.onHello(frame);
      case "pong":
      case "ok":
        this.settle(frame.ref, frame);
        return;
      case "ack":
        return this.onAck(frame);
      case "error":
        return this.onError(frame);
      case "event":
        return this.catchup.accept(fromWire(frame as ConversationEvent));
      case "resumed":
        this.resumeDone(frame.ref, frame.conversation_id);
        this.catchup.finish(frame.conversation_id);
        this.emit("resumed", { conversation_id: frame.conversation_id, seq: frame.seq });
        return;
      case "resync":
        this.resumeDone(frame.ref, frame.conversation_id);
        return void this.resync(frame.conversation_id);
      case "key_exchange":
        return this.emit("key_exchange", { ...frame, payload: toBytes(frame.payload) });
      case "typing":
      case "presence":
      case "receipt":
      case "announcement":
        return this.emitFrame(frame);
    }
  }

  private emitFrame(
    frame: Extract<ServerFrame, { type: "typing" | "presence" | "receipt" | "announcement" }>,
  ) {
    if (frame.type === "typing") this.emit("typing", frame);
    else if (frame.type === "presence") this.emit("presence", frame);
    else if (frame.type === "receipt") this.emit("receipt", frame);
    else this.emit("announcement", frame);
  }

  private onAck(frame: Extract<ServerFrame, { type: "ack" }>) {
    let ref = frame.ref;
    if (typeof ref !== "number" || !this.pending.has(ref)) {
      // A retried message is matched by its client_msg_id when the ref is not ours any more.
      for (const [r, p] of this.pending.entries()) if (p.frame.client_msg_id === frame.client_msg_id) ref = r;
    }
    const conversationId = typeof ref === "number" ? this.pending.get(ref)?.frame.conversation_id : undefined;
    if (typeof conversationId === "string") this.catchup.noteAck(conversationId, frame.seq);
    this.settle(ref, frame);
  }

  private onError(frame: Extract<ServerFrame, { type: "error" }>) {
    if (this.settle(frame.ref, frame)) return;
    const batch = typeof frame.ref === "number" ? this.resumeBatches.get(frame.ref) : undefined;
    if (batch && frame.conversation_ids) {
      // The conversations of a resume we are no longer in, named in one error: they are forgotten.
      for (const id of frame.conversation_ids) {
        this.resumeDone(frame.ref, id);
        this.catchup.forget(id);
      }
      return;
    }
    this.emit("error", new ParleyError(frame.code, frame.message));
    // The resume was refused as a whole (rate limited, say): its conversations hold their live events
    // until it is made again, which a reconnect does.
    if (batch) this.ws?.close(4000, "resume failed");
  }

  // --- resume and catch-up ---

  private resume() {
    this.resumeFrom([...this.catchup.positions.keys()]);
  }

  /**
   * After a reconnect: the conversations we were added to while away are resumed from where we were added
   * (their first members, from their start). Their changes were sent to no socket of ours, and nothing
   * else would tell us of them.
   */
  private async discover() {
    const rest = this.opts.rest;
    const socket = this.ws;
    if (!rest) return;
    let list: ConversationView[];
    try {
      list = await rest.conversations.all();
    } catch {
      // The next live event in one of them starts its catch-up all the same.
      return;
    }
    if (this.ws !== socket || !this.ready) return;
    const known = this.catchup.positions;
    const fresh = list.filter((c) => !known.has(c.id) && !this.catchup.isResuming(c.id));
    for (const c of fresh) this.catchup.join(c.id, this.joinedSeq(c));
    if (fresh.length > 0) this.resumeFrom(fresh.map((c) => c.id));
  }

  /**
   * A live event in a conversation we have no position for, other than the one that added us: where we
   * were added is asked for over REST, and the conversation resumed from there (its events wait). Without
   * a REST client there is no asking: it is resumed from its start.
   */
  private async locate(conversationId: string) {
    const rest = this.opts.rest;
    const socket = this.ws;
    if (!rest) return this.resumeFrom([conversationId]);
    let joined: number;
    try {
      joined = this.joinedSeq(await rest.conversations.get(conversationId));
    } catch (err) {
      if (!(err instanceof ParleyError && err.code === "not_found")) return this.catchupFailed(err, socket);
      // Not a member any more (removed, or it is gone): there is nothing of it to deliver.
      if (this.ws === socket) this.catchup.forget(conversationId);
      return;
    }
    if (this.ws !== socket || !this.catchup.isResuming(conversationId)) return;
    this.catchup.join(conversationId, joined);
    this.resumeFrom([conversationId]);
  }

  /** Where our part of the conversation's log starts (0, its start, from a server that does not say). */
  private joinedSeq(conversation: ConversationView): number {
    return conversation.participants.find((p) => p.user_id === this.opts.userId)?.joined_seq ?? 0;
  }

  /** Resumes these conversations from their positions (their live events wait meanwhile). */
  private resumeFrom(ids: string[]) {
    for (let i = 0; i < ids.length; i += RESUME_CHUNK) this.sendResume(ids.slice(i, i + RESUME_CHUNK));
  }

  /** One resume frame, or two of half as many conversations each when it would be over the frame limit. */
  private sendResume(ids: string[]) {
    const ref = this.nextRef++;
    const positions: Record<string, number> = {};
    for (const id of ids) positions[id] = this.catchup.begin(id);
    this.resumeBatches.set(ref, ids);
    if (this.transmit({ type: "resume", ref, positions }) !== "too_large" || ids.length < 2) return;
    this.resumeBatches.delete(ref);
    const half = Math.ceil(ids.length / 2);
    this.sendResume(ids.slice(0, half));
    this.sendResume(ids.slice(half));
  }

  private resumeDone(ref: unknown, conversationId: string) {
    if (typeof ref !== "number") return;
    const batch = this.resumeBatches.get(ref);
    if (!batch) return;
    const i = batch.indexOf(conversationId);
    if (i >= 0) batch.splice(i, 1);
    if (batch.length === 0) this.resumeBatches.delete(ref);
  }

  /** Too much to replay over the socket: page the conversation's changes over REST, then go live. */
  private async resync(conversationId: string) {
    const socket = this.ws;
    let after = this.catchup.begin(conversationId);
    this.emit("resync", { conversation_id: conversationId });
    const rest = this.opts.rest;
    if (!rest) {
      this.emit("error", new ParleyError("resync_unavailable", "resync needs a REST client"));
      return this.catchup.finish(conversationId);
    }
    const fetched: ConversationEvent[] = [];
    try {
      for (;;) {
        const page = await rest.messages.events(conversationId, { after, limit: CATCHUP_PAGE });
        for (const message of page.items) fetched.push(replayedEvent(message));
        const last = page.items.at(-1);
        if (!page.has_more || !last) break;
        after = last.version_seq;
      }
    } catch (err) {
      return this.catchupFailed(err, socket);
    }
    if (this.ws !== socket || !this.catchup.isResuming(conversationId)) return;
    this.catchup.finish(conversationId, fetched);
  }

  /**
   * A REST call of a catch-up failed: the error is told, and the socket it was for is left, so that the
   * reconnect catches the conversation up again (from its position, which did not move, or from where we
   * joined it, which the reconnect's list of conversations says).
   */
  private catchupFailed(err: unknown, socket: WebSocket | null) {
    // Closed meanwhile (close() gives up the REST calls on their way): nothing to tell.
    if (this.stopped) return;
    this.emit("error", err instanceof ParleyError ? err : new ParleyError("network", String(err)));
    if (this.ws === socket) this.ws?.close(4000, "catch-up failed");
  }

  private emit<K extends RealtimeEventType>(type: K, payload: Parameters<Handler<K>>[0]) {
    this.emitter.emit(type, payload, (err) => {
      if (type !== "error")
        this.emit(
          "error",
          new ParleyError("handler_failed", err instanceof Error ? err.message : String(err)),
        );
    });
  }
}

/** What may say that the session is over: the socket's close, or a failed token refresh or session check. */
type Cause = { close: number; reason: string } | { error: unknown };

/** Codes that say the session is over: no token will be given for it again. */
const SESSION_OVER = new Set(["session_revoked", "refresh_token_reused", "invalid_token", "unauthorized"]);

/**
 * Whether the session is over, so that trying again cannot work: a terminal close (4500-4999), or a
 * refusal with a 401 or one of the codes above. Answers the error calls then fail with, and the code and
 * reason of the final close event (for a refusal over REST, the close code that stands for it).
 */
function sessionEnd(cause: Cause): { error: ParleyError; code: number; reason: string } | null {
  if ("close" in cause) {
    const { close: code, reason } = cause;
    if (code < 4500 || code > 4999) return null;
    const error =
      code === CLOSE.sessionRevoked
        ? new ParleyError("session_revoked", reason || "session revoked")
        : code === CLOSE.forbidden
          ? new ParleyError("forbidden", reason || "forbidden")
          : new ParleyError("unauthorized", reason || `refused (${code})`);
    return { error, code, reason };
  }
  const { error } = cause;
  if (!(error instanceof ParleyError && (error.status === 401 || SESSION_OVER.has(error.code)))) return null;
  const code =
    error.code === "session_revoked" || error.code === "refresh_token_reused"
      ? CLOSE.sessionRevoked
      : error.code === "forbidden"
        ? CLOSE.forbidden
        : CLOSE.unauthorized;
  return { error, code, reason: error.message };
}
