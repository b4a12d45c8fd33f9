// The realtime connection: one WebSocket to /ws/{user_id}/{session_id} (MessagePack by default), typed
// events, requests answered by ref, frames kept within the limits the hello gives (size, rate), heartbeat,
// and automatic reconnect with jittered backoff that resumes every conversation from the last seq seen
// (catching up over REST when the server says resync), until the session is over. A conversation the user
// is added to starts where they were added. This file is the app's side of it and reads the server's
// frames; the socket's life is link.ts's, what is written sender.ts's, catching up resume.ts's.

import { CLOSE, ENCODINGS, type Encoding, type ServerFrame } from "../realtime/frames.ts";
import type { Catchup } from "./catchup.ts";
import { Deliveries } from "./deliveries.ts";
import { ParleyError } from "./errors.ts";
import {
  type ConversationEvent,
  Emitter,
  type Handler,
  type OpenInfo,
  type RealtimeEventType,
} from "./events.ts";
import { type Hello, Link } from "./link.ts";
import { type MemberReceipts, Receipts } from "./receipts.ts";
import type { RestClient } from "./rest.ts";
import { Resumes } from "./resume.ts";
import { Sender } from "./sender.ts";
import type { SendMessage } from "./types.ts";
import { toBytes } from "./wire.ts";

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
  /**
   * Positions to resume from on the first connect (e.g. each conversation's last_seq). The connection
   * keeps them up to date, and keeps them across close() and a later connect().
   */
  positions?: Record<string, number>;
  /** How long a request waits for its ack / ok. Default 10 s. */
  requestTimeoutMs?: number;
  /**
   * How long a new socket has to open and say hello before it is left as a failed connection (a first
   * connect() then fails with `closed`; a reconnect tries again). Default 10 s.
   */
  helloTimeoutMs?: number;
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
  /**
   * Acknowledge delivery (`message_ack`) of the messages handed to the app, live or caught up, so that
   * their senders see them delivered without the app acking. Default true; false leaves it to `ack()`.
   */
  autoAck?: boolean;
}

export type MessageInput = Omit<SendMessage, "client_msg_id"> & { client_msg_id?: string };
export interface Ack {
  client_msg_id: string;
  message_id: string;
  seq: number;
}
export type PresenceStatus = "online" | "away" | "dnd" | "offline";

export class RealtimeConnection {
  readonly encoding: Encoding;
  /** The session the connection belongs to. */
  readonly sessionId: string;
  private emitter = new Emitter();
  private link: Link;
  private sender: Sender;
  private resumes: Resumes;
  private catchup: Catchup;
  private receiptState: Receipts;
  /** The delivery acks the connection makes itself (autoAck), or null. */
  private deliveries: Deliveries | null;
  private userId: string;
  /**
   * The public channels subscribed: a socket's channels end with it, so every new one (a reconnect, a
   * connect() after close()) subscribes to them again.
   */
  private channels = new Set<string>();
  /** Channels whose subscribe waits for its answer (sent again by the next socket if this one drops). */
  private subscribing = new Set<string>();

  constructor(opts: RealtimeOptions) {
    const base = new URL(opts.baseUrl);
    if (base.protocol !== "http:" && base.protocol !== "https:")
      throw new TypeError(`baseUrl: expected http or https, got ${base.protocol}`);
    if (!opts.userId) throw new TypeError("userId: required");
    if (!opts.sessionId) throw new TypeError("sessionId: required");
    const encoding = opts.encoding ?? "msgpackr";
    if (!ENCODINGS.includes(encoding))
      throw new TypeError(`encoding: expected ${ENCODINGS.join(", ")}; got ${String(encoding)}`);
    checkOptions(opts);
    this.encoding = encoding;
    this.sessionId = opts.sessionId;
    this.userId = opts.userId;
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    const root = base.href.replace(/\/+$/, "");
    const url = `${root}/ws/${encodeURIComponent(opts.userId)}/${encodeURIComponent(opts.sessionId)}`;
    const emit = this.emit.bind(this);
    this.link = new Link(opts, url, encoding, {
      hello: (frame) => this.onHello(frame),
      frame: (frame) => this.onFrame(frame),
      ping: () => void this.sender.transmit({ type: "ping" }),
      closed: (code) => {
        if (code === CLOSE.tooLarge) this.sender.tooLarge();
      },
      left: () => {
        this.sender.left();
        this.resumes.left();
      },
      dropped: (code) => this.sender.pending.dropped(`the connection dropped (${code}) before an answer`),
      stopped: (err) => {
        this.deliveries?.stop();
        this.sender.pending.failAll(err);
      },
      emit,
    });
    this.sender = new Sender(this.link, opts.requestTimeoutMs ?? 10_000);
    // Taken again by the server without harm (delivery only moves forward): sent again after a reconnect.
    this.deliveries =
      opts.autoAck === false
        ? null
        : new Deliveries(
            opts.userId,
            async (conversationId, seq) =>
              void (await this.request({ type: "message_ack", conversation_id: conversationId, seq }, true)),
            () => this.link.connected,
          );
    this.receiptState = new Receipts((receipt) => this.emit("receipt", receipt));
    this.resumes = new Resumes(opts.userId, opts.rest, this.link, this.sender, this.receiptState, emit);
    this.catchup = this.resumes.catchup;
    for (const [id, seq] of Object.entries(opts.positions ?? {})) {
      // The server refuses a resume naming one (validation_failed), and each reconnect would send it again.
      if (!Number.isSafeInteger(seq) || seq < 0)
        throw new TypeError(`positions.${id}: expected a seq, an integer of 0 or more; got ${String(seq)}`);
      this.catchup.positions.set(id, seq);
    }
  }

  /** The highest seq seen per conversation. */
  get positions(): Record<string, number> {
    return Object.fromEntries(this.catchup.positions);
  }

  /**
   * Where each member of the conversation has got to (delivered, read) as far as this connection knows:
   * from the receipts heard live, and at every connect and reconnect from where the server says they stand
   * (a dm's or group's members, the user among them; in a channel, the user alone). Each move is told once
   * as a `receipt` event.
   */
  receipts(conversationId: string): Record<string, MemberReceipts> {
    return this.receiptState.of(conversationId);
  }

  /** Ended for good: its session is over, and it will not connect again (a new one is needed). */
  get ended(): boolean {
    return this.link.endReason !== null;
  }

  /** True between `hello` and the socket closing. */
  get connected(): boolean {
    return this.link.connected;
  }

  /** The encoding in use: what the server chose from the subprotocols offered. */
  get negotiatedEncoding(): Encoding {
    return this.link.encoding;
  }

  on<K extends RealtimeEventType>(type: K, handler: Handler<K>): () => void {
    return this.emitter.on(type, handler);
  }

  /**
   * Opens the socket; resolves on the server's hello. A first connection that fails is not retried. Called
   * while connecting or waiting to reconnect, it joins that connection (a waiting reconnect is made at
   * once): there is never a second socket. Connected, it fails with bad_request. After close() (or the
   * session's end) it is a first connect again, resuming every conversation from the position it kept.
   */
  connect(): Promise<OpenInfo> {
    return this.link.connect();
  }

  /**
   * Closes for good: no reconnect; requests still waiting, a connect() under way and later calls fail with
   * `closed`, and the final close event (1000) comes at once.
   */
  close() {
    this.link.close();
  }

  /**
   * Ends the connection for good because its session is over, learnt elsewhere than on the socket (a
   * refused token refresh, a sign-out in another tab): as when the server ends it, requests waiting and
   * later calls fail with `error`, and the final close event (4501 or 4500) carries it. Once only: a
   * connection already stopped says nothing more. An error that does not say the session is over is
   * ignored.
   */
  endSession(error: ParleyError) {
    this.link.endSession(error);
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
    this.sender.transmit({ type: on ? "typing_start" : "typing_stop", conversation_id: conversationId });
  }

  /** Delivered up to seq. The connection acks what it hands the app itself unless `autoAck` is false. */
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

  /**
   * Adds a public channel's announcements; the connection stays subscribed across reconnects until
   * unsubscribe(). What is announced while no socket is open is not delivered later (nothing keeps it).
   */
  async subscribe(channel: string): Promise<void> {
    // Kept from now on, so that an unsubscribe() made before the answer is not undone by it.
    this.channels.add(channel);
    try {
      // Taken again by the server without harm: safe to send again on the next socket if this one drops.
      await this.request({ type: "subscribe", channel }, true);
    } catch (err) {
      this.channels.delete(channel);
      throw err;
    }
  }

  /** Ends a public channel's announcements, on this socket and the ones after it. */
  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
    await this.request({ type: "unsubscribe", channel }, true);
  }

  private request(frame: Record<string, unknown>, retry = false): Promise<ServerFrame> {
    return this.sender.request(frame, retry);
  }

  // --- frames ---

  /** A new socket said hello: its limits, every conversation resumed, then the requests that waited. */
  private onHello(frame: Hello) {
    this.sender.hello(frame);
    this.resumes.hello();
    this.resubscribe();
    this.sender.flush();
    this.deliveries?.hello();
  }

  /**
   * The new socket joins the channels the connection was subscribed to. One the server refuses now (its
   * WS_MAX_CHANNELS lowered meanwhile, say) is dropped and told as an `error` event; one that fails for
   * this socket's sake alone (it closed, the answer timed out) is subscribed again by the next socket.
   */
  private resubscribe() {
    for (const channel of this.channels) {
      if (this.subscribing.has(channel)) continue;
      this.subscribing.add(channel);
      this.request({ type: "subscribe", channel }, true)
        .catch((err: unknown) => {
          if (this.link.stopped || !(err instanceof ParleyError)) return;
          if (err.code === "validation_failed") this.channels.delete(channel);
          this.emit("error", err);
        })
        .finally(() => this.subscribing.delete(channel));
    }
  }

  private onFrame(frame: ServerFrame) {
    switch (frame.type) {
      case "pong":
      case "ok":
        this.sender.settle(frame.ref, frame);
        return;
      case "ack":
        return this.onAck(frame);
      case "error":
        return this.onError(frame);
      case "event":
        return this.catchup.frame(frame as ConversationEvent);
      case "resumed":
        return this.resumes.resumed(frame);
      case "resync":
        return this.resumes.resync(frame);
      case "heads":
        for (const [id, seq] of Object.entries(frame.conversations ?? {}))
          if (typeof seq === "number") this.resumes.head(id, seq);
        return;
      case "receipt":
        return this.receiptState.live(frame);
      case "receipts":
        return this.receiptState.snapshot(frame);
      case "key_exchange":
        return this.emit("key_exchange", { ...frame, payload: toBytes(frame.payload) });
      case "typing":
      case "presence":
      case "announcement":
        return this.emitFrame(frame);
    }
  }

  private emitFrame(frame: Extract<ServerFrame, { type: "typing" | "presence" | "announcement" }>) {
    if (frame.type === "typing") this.emit("typing", frame);
    else if (frame.type === "presence") this.emit("presence", frame);
    else this.emit("announcement", frame);
  }

  private onAck(frame: Extract<ServerFrame, { type: "ack" }>) {
    const { pending } = this.sender;
    let ref = frame.ref;
    if (typeof ref !== "number" || !pending.has(ref)) {
      // A retried message is matched by its client_msg_id when the ref is not ours any more.
      for (const [r, p] of pending.entries()) if (p.frame.client_msg_id === frame.client_msg_id) ref = r;
    }
    const conversationId = typeof ref === "number" ? pending.get(ref)?.frame.conversation_id : undefined;
    if (typeof conversationId === "string") this.catchup.noteAck(conversationId, frame.seq);
    this.sender.settle(ref, frame);
  }

  /** An error answers a request of ours, or a resume; any other is the app's to hear. */
  private onError(frame: Extract<ServerFrame, { type: "error" }>) {
    if (this.sender.settle(frame.ref, frame) || this.resumes.refused(frame)) return;
    this.emit("error", new ParleyError(frame.code, frame.message));
  }

  private emit<K extends RealtimeEventType>(type: K, payload: Parameters<Handler<K>>[0]) {
    this.emitter.emit(type, payload, (err) => {
      if (type !== "error")
        this.emit(
          "error",
          new ParleyError("handler_failed", err instanceof Error ? err.message : String(err)),
        );
    });
    this.noteDelivery(type, payload);
  }

  /** What the delivery acks follow: the events handed over, the user's own receipts, departures. */
  private noteDelivery<K extends RealtimeEventType>(type: K, payload: Parameters<Handler<K>>[0]) {
    const deliveries = this.deliveries;
    if (!deliveries) return;
    if (type === "event") deliveries.delivered(payload as ConversationEvent);
    else if (type === "gone") deliveries.forget((payload as { conversation_id: string }).conversation_id);
    else if (type === "receipt") {
      // A read moves delivery with it; the user's other devices count as theirs.
      const r = payload as Extract<ServerFrame, { type: "receipt" }>;
      if (r.user_id === this.userId) deliveries.standsAt(r.conversation_id, r.seq);
    }
  }
}

/**
 * The options a ParleyClient passes on too, checked when either is built: a delay of 0, NaN or less (a
 * number read from an unset variable, say) would reconnect or time out in a tight loop.
 */
export function checkOptions(
  opts: Pick<RealtimeOptions, "requestTimeoutMs" | "helloTimeoutMs" | "backoff" | "autoAck">,
) {
  const delays: [string, unknown, number][] = [
    ["requestTimeoutMs", opts.requestTimeoutMs, 1],
    ["helloTimeoutMs", opts.helloTimeoutMs, 1],
    ["backoff.minMs", opts.backoff?.minMs, 1],
    ["backoff.maxMs", opts.backoff?.maxMs, 1],
    ["backoff.resetAfterMs", opts.backoff?.resetAfterMs, 0],
  ];
  for (const [name, value, least] of delays) {
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value) || value < least)
      throw new TypeError(
        `${name}: expected ${least === 0 ? "0 or more" : "a positive number of"} milliseconds, got ${String(value)}`,
      );
  }
  if (opts.autoAck !== undefined && typeof opts.autoAck !== "boolean")
    throw new TypeError(`autoAck: expected true or false, got ${String(opts.autoAck)}`);
}
