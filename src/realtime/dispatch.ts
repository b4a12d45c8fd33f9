// Frames from clients -> services -> replies. Each reply echoes the frame's `ref`; failures become
// `error` frames with the REST error codes, and the socket stays open.

import type { Deps } from "../deps.ts";
import { AppError, errorText, storageUnavailable } from "../lib/errors.ts";
import { isManager } from "../modules/conversations/access.ts";
import { statusOf } from "../modules/messages/model.ts";
import type { MembershipRecord, MessageRecord, PositionFloor } from "../store/types.ts";
import { encode } from "./codec.ts";
import type { Connections, Socket } from "./connections.ts";
import { type Fanout, type TypingFrame, topics } from "./fanout.ts";
import { flush, send, sendEncoded } from "./outbox.ts";
import { OPEN, Pacer } from "./pacing.ts";
import type { Presence } from "./presence.ts";
import { type ClientFrame, type Encoding, PAYLOAD_BYTES, type ServerFrame } from "./protocol.ts";
import { ReceiptsMemo } from "./receipts-memo.ts";
import { ReplayCache } from "./replay-cache.ts";

const TYPING_EXPIRY_MS = 6000;
/**
 * A start typed through another node is ended here this long after it would have expired there, should
 * that node's stop never come (it died, or lost Redis): the nodes' clocks and the relay are a moment apart.
 */
const TYPING_ELSEWHERE_GRACE_MS = 1000;
/** Conversations of one resume whose changes are read ahead of the one being sent. */
export const RESUME_READ_AHEAD = 8;
/** The floor of a catch-up with no message to give a status to. */
const NO_FLOOR: PositionFloor = { delivered: [], read: [] };

export function sendError(
  ws: Socket,
  ref: string | number | undefined,
  code: string,
  message: string,
  details?: { conversation_ids: string[] },
) {
  ws.data.errors.inc([code]);
  send(ws, { type: "error", ...(ref === undefined ? {} : { ref }), code, message, ...details });
}

export class Dispatcher {
  /**
   * Typing started and not yet stopped, by conversation and user: the socket that started it, its expiry,
   * and whether it is in a channel (where only owners and admins type).
   */
  private typing = new Map<
    string,
    { ws: Socket; timer: Timer; stop: ServerFrame; topic: string; channel: boolean }
  >();
  /** The typing keys each socket started, so that its close ends them at once. */
  private typingOf = new WeakMap<Socket, Set<string>>();
  /** Each socket's typing frame being handled, so that the next waits for it. */
  private typingTurns = new WeakMap<Socket, Promise<void>>();
  /** Starts typed through other nodes, by conversation and user: when this node ends them for its sockets. */
  private typingElsewhere = new Map<string, Timer>();
  /**
   * Each socket's resume being answered, so that the next waits for it: two at once would each write a
   * chunk past the pacer's look at the socket's buffer, and the SDK sends a resume per 500 conversations.
   */
  private resumeTurns = new WeakMap<Socket, Promise<void>>();
  /** Each socket's resumes being answered or waiting their turn: at most WS_RATE_BURST. */
  private resumesOf = new WeakMap<Socket, number>();
  /** Resume frames being answered on this node, those waiting their turn included (metrics). */
  resuming = 0;
  readonly pacer: Pacer;
  private replays = new ReplayCache();
  private receipts = new ReceiptsMemo();

  constructor(
    private deps: Omit<Deps, "gateway">,
    private fanout: Fanout,
    private presence: Presence,
    private connections: Connections,
  ) {
    this.pacer = new Pacer(deps.config.WS_BACKPRESSURE_LIMIT, deps.config.WS_DRAIN_TIMEOUT * 1000);
  }

  async handle(ws: Socket, frame: ClientFrame): Promise<void> {
    const ref = frame.ref;
    const me = ws.data;
    try {
      switch (frame.type) {
        case "ping":
          return send(ws, {
            type: "pong",
            ...(ref === undefined ? {} : { ref }),
            server_time: new Date().toISOString(),
          });
        case "message": {
          const receivedAt = performance.now();
          const { conversation_id, ref: _, type: __, ...input } = frame;
          const { message } = await this.deps.messages.send(conversation_id, me.user_id, input);
          this.deps.metrics.ws.ackSeconds.observe((performance.now() - receivedAt) / 1000);
          return send(ws, {
            type: "ack",
            ...(ref === undefined ? {} : { ref }),
            client_msg_id: frame.client_msg_id,
            message_id: message.id,
            seq: message.seq,
          });
        }
        case "typing_start":
        case "typing_stop":
          await this.typingInTurn(
            ws,
            frame.conversation_id,
            frame.type === "typing_start" ? "start" : "stop",
          );
          // Answered like the other frames that have no reply of their own: a client that gave a ref waits on it.
          return this.ok(ws, ref);
        case "message_ack":
          await this.deps.messages.acknowledge(frame.conversation_id, me.user_id, frame.seq);
          return this.ok(ws, ref);
        case "message_read":
          await this.deps.messages.markRead(frame.conversation_id, me.user_id, frame.seq);
          return this.ok(ws, ref);
        case "reaction":
          await this.deps.messages.react(frame.message_id, me.user_id, frame.emoji, frame.op);
          return this.ok(ws, ref);
        case "presence_update":
          await this.presence.choose(me.user_id, frame.status);
          return this.ok(ws, ref);
        case "key_exchange":
          return await this.keyExchange(ws, frame);
        case "resume":
          return await this.resumeInTurn(ws, frame.positions, frame.receipts, ref);
        case "subscribe": {
          const channels = channelsOf(me);
          if (!channels.has(frame.channel) && channels.size >= this.deps.config.WS_MAX_CHANNELS) {
            throw new AppError(
              "validation_failed",
              `channel: at most ${this.deps.config.WS_MAX_CHANNELS} channels per socket`,
            );
          }
          channels.add(frame.channel);
          await this.fanout.subscribe(ws, topics.channel(frame.channel));
          return this.ok(ws, ref);
        }
        case "unsubscribe":
          // Any channel, the path's of a public socket too; one the socket is not in changes nothing. The
          // node stops listening to it on Redis once none of its sockets does (fanout.leaveIdle).
          channelsOf(me).delete(frame.channel);
          this.fanout.unsubscribe(ws, topics.channel(frame.channel));
          return this.ok(ws, ref);
      }
    } catch (err) {
      if (err instanceof AppError) return sendError(ws, ref, err.code, err.message);
      // Storage out of service (a full disk, MongoDB out of reach): the client tries again later, as a
      // REST client is told with 503.
      const down = storageUnavailable(err);
      if (down) {
        this.deps.logger.warn({ code: down, frame: frame.type }, "storage unavailable");
        return sendError(ws, ref, "unavailable", "storage is unavailable; try again");
      }
      this.deps.logger.error({ err: errorText(err), frame: frame.type }, "frame failed");
      return sendError(ws, ref, "internal", "internal error");
    }
  }

  private ok(ws: Socket, ref: string | number | undefined) {
    if (ref !== undefined) send(ws, { type: "ok", ref });
  }

  /**
   * A socket's typing frames are published in the order they came: the role check may read the store, and
   * a start overtaken by its stop would show the user typing until it expired.
   */
  private typingInTurn(ws: Socket, conversationId: string, state: "start" | "stop"): Promise<void> {
    return inTurn(this.typingTurns, ws, () => this.typingFrame(ws, conversationId, state));
  }

  /**
   * A socket's resumes are answered one after another, in the order they came. One whose socket closed
   * before its turn reads nothing. A socket may have WS_RATE_BURST of them in hand (as many as it may send
   * at once); past that it is refused `rate_limited`: a client that sends a resume a second while it reads
   * none of the replies would otherwise pile up a frame's worth of positions a second until it is closed.
   */
  private resumeInTurn(
    ws: Socket,
    positions: Record<string, number>,
    asked: Record<string, number | null> | undefined,
    ref: string | number | undefined,
  ): Promise<void> {
    const held = this.resumesOf.get(ws) ?? 0;
    if (held >= this.deps.config.WS_RATE_BURST)
      throw new AppError("rate_limited", "too many resumes waiting for their replies; read them first");
    this.resumesOf.set(ws, held + 1);
    this.resuming++;
    const mine = inTurn(this.resumeTurns, ws, async () => {
      if (ws.readyState === OPEN) await this.resume(ws, positions, asked, ref);
    });
    const done = () => {
      this.resuming--;
      const left = (this.resumesOf.get(ws) ?? 1) - 1;
      if (left > 0) this.resumesOf.set(ws, left);
      else this.resumesOf.delete(ws);
    };
    mine.then(done, done);
    return mine;
  }

  private async typingFrame(ws: Socket, conversationId: string, state: "start" | "stop") {
    const { user_id } = ws.data;
    const topic = topics.conversation(conversationId);
    // Thrown, so that the reply echoes the frame's ref like every other error.
    if (!this.fanout.isSubscribed(ws, topic)) throw new AppError("not_found", "conversation not found");
    // Who may not post in a channel (its readers) does not type there either: thousands of readers would
    // each be shown someone writing what they cannot send. From memory (the membership cache), as a send.
    const me = await this.deps.membership.require(conversationId, user_id);
    if (me.conversation_type === "channel" && !isManager(me))
      throw new AppError("forbidden", "only owners and admins post in a channel");
    // Closed (or taken out of the conversation) while that was read: a start now would outlive it.
    if (!this.fanout.isSubscribed(ws, topic)) throw new AppError("not_found", "conversation not found");
    const key = `${conversationId}:${user_id}`;
    this.endTyping(key);
    // Typed through another node before: this node's frame tells that one, which lets it go.
    this.forgetElsewhere(key);
    const frame: ServerFrame = { type: "typing", conversation_id: conversationId, user_id, state };
    this.fanout.publish(topic, frame);
    if (state === "start") {
      const stop: ServerFrame = { ...frame, state: "stop" };
      // A start with no stop ends by itself, so a client that went silent does not type forever.
      const timer = setTimeout(() => {
        this.endTyping(key);
        this.fanout.publish(topic, stop);
      }, TYPING_EXPIRY_MS);
      timer.unref?.();
      this.typing.set(key, { ws, timer, stop, topic, channel: me.conversation_type === "channel" });
      const keys = this.typingOf.get(ws);
      if (keys) keys.add(key);
      else this.typingOf.set(ws, new Set([key]));
    }
  }

  /** Forgets a typing start (stopped, expired, or taken over by a later start of the same user). */
  private endTyping(key: string) {
    const typing = this.typing.get(key);
    if (!typing) return;
    clearTimeout(typing.timer);
    this.typing.delete(key);
    this.typingOf.get(typing.ws)?.delete(key);
  }

  /**
   * A typing frame another node published. A start there is the user's typing now: one a socket of theirs
   * here started before no longer ends as that socket closes (nor expires here). And it is ended for this
   * node's sockets a moment after it would have expired there, should that node's stop never come (it died,
   * or lost Redis: the stop was dropped). A stop ends only that; one of this node's own starts since runs on.
   */
  typedElsewhere({ conversation_id, user_id, state }: TypingFrame) {
    const key = `${conversation_id}:${user_id}`;
    this.forgetElsewhere(key);
    if (state !== "start") return;
    this.endTyping(key);
    const stop: ServerFrame = { type: "typing", conversation_id, user_id, state: "stop" };
    const timer = setTimeout(() => {
      this.typingElsewhere.delete(key);
      this.fanout.tellHere(topics.conversation(conversation_id), stop);
    }, TYPING_EXPIRY_MS + TYPING_ELSEWHERE_GRACE_MS);
    timer.unref?.();
    this.typingElsewhere.set(key, timer);
  }

  private forgetElsewhere(key: string) {
    clearTimeout(this.typingElsewhere.get(key));
    this.typingElsewhere.delete(key);
  }

  /**
   * A socket left a conversation (its user removed): what it was typing there ends now, told to those
   * still in it, not when it would have expired.
   */
  left(ws: Socket, topic: string) {
    this.stopTypingOf(ws, topic);
  }

  /**
   * A member was made a reader (role member): in a channel they may type no more, and their own stop would
   * be refused, so what they were typing there ends now, not when it would have expired. In a group a
   * member types as an admin does: nothing changes.
   */
  demoted(conversationId: string, userId: string) {
    const key = `${conversationId}:${userId}`;
    const typing = this.typing.get(key);
    if (!typing?.channel) return;
    this.endTyping(key);
    this.fanout.publish(typing.topic, typing.stop);
  }

  /**
   * A socket closed: what it was typing ends now, not when it would have expired (the app closed mid-word,
   * the network gone). A start another socket of the user made since is theirs, and goes on.
   */
  closed(ws: Socket) {
    this.stopTypingOf(ws);
    this.typingOf.delete(ws);
    this.pacer.closed(ws);
  }

  /** Bun's drain handler: the socket took some of its queue. */
  drained(ws: Socket) {
    this.pacer.drained(ws);
  }

  /** Ends, and tells, what this socket is typing (in one conversation's topic, or in all). */
  private stopTypingOf(ws: Socket, topic?: string) {
    for (const key of [...(this.typingOf.get(ws) ?? [])]) {
      const typing = this.typing.get(key);
      if (typing?.ws !== ws || (topic !== undefined && typing.topic !== topic)) continue;
      this.endTyping(key);
      this.fanout.publish(typing.topic, typing.stop);
    }
  }

  private async keyExchange(ws: Socket, frame: Extract<ClientFrame, { type: "key_exchange" }>) {
    const { user_id, session_id } = ws.data;
    if (!(await this.sharesConversation(user_id, frame.to_user_id))) {
      throw new AppError("not_found", "no shared conversation with that user");
    }
    // Bytes, however they came: a JSON client's base64url text is relayed as MessagePack bin to the
    // MessagePack sockets (and as base64url again to JSON ones), and held to 16 KiB of bytes as bin is.
    const text = typeof frame.payload === "string" ? frame.payload.replace(/=+$/, "") : undefined;
    // One character past a multiple of 4 stands for no whole byte: not base64url (Buffer would drop it).
    if (text !== undefined && text.length % 4 === 1)
      throw new AppError("validation_failed", "payload: not base64url");
    const payload =
      text === undefined ? (frame.payload as Uint8Array) : new Uint8Array(Buffer.from(text, "base64url"));
    if (payload.byteLength > PAYLOAD_BYTES)
      throw new AppError("validation_failed", `payload: at most ${PAYLOAD_BYTES} bytes`);
    const out: ServerFrame = {
      type: "key_exchange",
      from_user_id: user_id,
      from_device_id: session_id,
      payload,
    };
    const to = frame.to_device_id;
    let reached = true;
    // A device of that user only: a session id of someone else's reaches nobody.
    if (to) {
      if ((await this.deps.store.sessions.byId(to))?.user_id === frame.to_user_id)
        reached = this.fanout.toSession(to, frame.to_user_id, out) || this.connections.ofSession(to).size > 0;
    } else {
      reached =
        this.fanout.publish(topics.user(frame.to_user_id), out) ||
        this.connections.ofUser(frame.to_user_id).size > 0;
    }
    // Nothing keeps it: one that could reach the recipient's devices on no node is refused, to be sent
    // again, rather than acknowledged and lost. (One that reached a device here is not: sent again, that
    // device would have it twice.)
    if (!reached) throw new AppError("unavailable", "the other nodes cannot be reached; try again");
    this.ok(ws, frame.ref);
  }

  /** Whether b is a or one of a's peers: one lookup of the pair, not a read of all of a's peers. */
  private async sharesConversation(a: string, b: string): Promise<boolean> {
    return a === b || (await this.deps.store.conversations.peersAmong(a, [b])).length > 0;
  }

  /**
   * Everything after each position, in version_seq order, each message with its status as it is now; past
   * RESUME_MAX changes, `resync` instead. The conversations named that the user is not in get one error
   * naming them all, first: a frame may name 1000, and an error and a store read for each let one user's
   * allowed frames stall the node. Those named in `receipts` also get a `receipts` frame before their
   * `resumed` (or `resync`), unless the client holds their receipts at the version they are at.
   */
  private async resume(
    ws: Socket,
    positions: Record<string, number>,
    asked: Record<string, number | null> | undefined,
    ref: string | number | undefined,
  ) {
    const { store } = this.deps;
    const refField = ref === undefined ? {} : { ref };
    const entries = Object.entries(positions);
    const stray = Object.keys(asked ?? {}).find((id) => !Object.hasOwn(positions, id));
    if (stray !== undefined)
      throw new AppError("validation_failed", `receipts.${stray}: not among the positions resumed`);
    // Which of them the user is in, with what their receipts need: one read of the store whatever their
    // number.
    const ids = entries.map(([id]) => id);
    const mine = new Map(
      (await store.conversations.memberships(ws.data.user_id, ids)).map((m) => [m.conversation_id, m]),
    );
    const unknown = ids.filter((id) => !mine.has(id));
    if (unknown.length > 0) {
      const message = `${unknown.length === 1 ? "1 conversation" : `${unknown.length} conversations`} not found`;
      sendError(ws, ref, "not_found", message, { conversation_ids: unknown });
    }
    const wanted = entries.filter(([id]) => mine.has(id));
    // Where each log ends, read (once for all) when a conversation has nothing after its position: a
    // position past the end (a client's from before the store was restored from a backup, say) is answered
    // with the end, not echoed back, so that the client moves back to it instead of taking the next changes
    // for ones it has seen. A resume that has changes to send everywhere reads nothing more.
    let heads: Promise<Map<string, number>> | undefined;
    // Read a few conversations ahead of the one being sent: on a store a network away (MongoDB) a resume of
    // many is not one round trip after another. Replies still leave in the order asked.
    const read = (i: number) => {
      const [conversationId, after] = wanted[i] as [string, number];
      const membership = mine.get(conversationId) as MembershipRecord;
      const work = this.catchUp(membership, after, asked?.[conversationId]);
      // Awaited in its turn below; one that fails while an earlier one is awaited is not unhandled.
      work.catch(() => {});
      return work;
    };
    // The reads on their way, the next one's first.
    const ahead = wanted.slice(0, RESUME_READ_AHEAD).map((_, i) => read(i));
    let next = ahead.length;
    const { encoding } = ws.data;
    const { pacer } = this;
    // Paced by the socket (pacing.ts): after each chunk written, the chunk goes out and the socket's buffer
    // is looked at; past the pacer's mark, the catch-up waits for the client to read. A client that keeps
    // up costs a comparison per frame and a look per chunk, and no await.
    let unseen = 0;
    // The socket made the catch-up wait at the last look: the store is read one conversation ahead only,
    // not RESUME_READ_AHEAD, since what is read waits in memory for as long as the client takes.
    let slow = false;
    const crowded = () => {
      if (unseen < pacer.chunk) return false;
      unseen = 0;
      flush(ws);
      slow = pacer.crowded(ws);
      return slow;
    };
    const put = (bytes: Uint8Array | string) => {
      sendEncoded(ws, bytes);
      // In bytes, as the socket's buffer counts them: a JSON frame's length is in UTF-16 units, a third of
      // its bytes in Chinese, and a chunk of them went out three times the size pacing.ts allows for.
      unseen += typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length;
    };
    for (const [conversationId, after] of wanted) {
      const { changes, floor, receipts } = await (ahead.shift() as ReturnType<typeof read>);
      while (ahead.length < (slow ? 1 : RESUME_READ_AHEAD) && next < wanted.length) ahead.push(read(next++));
      if (changes === null) {
        if (receipts) {
          if (crowded() && !(await this.drain(ws))) return;
          put(receipts(encoding));
        }
        put(encode({ type: "resync", conversation_id: conversationId, ...refField }, encoding));
        continue;
      }
      // A conversation's catch-up leaves with the replies, corked (in chunks when it is large). Each event
      // is encoded once for every socket that replays it with the same status (replay-cache.ts).
      let seq = after;
      for (const m of changes) {
        if (crowded() && !(await this.drain(ws))) return;
        put(this.replays.frame(m, encoding, statusOf(m, floor)));
        seq = m.version_seq;
      }
      if (changes.length === 0) {
        heads ??= store.conversations.lastSeqs(wanted.map(([id]) => id));
        seq = Math.min(after, (await heads).get(conversationId) ?? after);
      }
      if (receipts) {
        if (crowded() && !(await this.drain(ws))) return;
        put(receipts(encoding));
      }
      put(encode({ type: "resumed", conversation_id: conversationId, seq, ...refField }, encoding));
    }
  }

  /**
   * Waits for a socket a catch-up crowds to drain (pacing.ts); false when it closed (the catch-up stops).
   * The sweep closes it if it takes nothing for WS_DRAIN_TIMEOUT.
   */
  private drain(ws: Socket): Promise<boolean> {
    if (ws.readyState === OPEN) this.deps.metrics.ws.resumePauses.inc();
    return this.pacer.drain(ws);
  }

  /**
   * One conversation's part of a resume: its changes after `after` (null past RESUME_MAX: a resync), the
   * lowest positions their status needs, and its `receipts` frame when the client asked for it (`held`: the
   * version it holds, null for none). At most one read besides the changes; in a dm or group, none while
   * its receipts stay as another resume read them (receipts-memo.ts).
   */
  private async catchUp(
    membership: MembershipRecord,
    after: number,
    held: number | null | undefined,
  ): Promise<{
    changes: MessageRecord[] | null;
    floor: PositionFloor;
    receipts?: (encoding: Encoding) => Uint8Array | string;
  }> {
    const { store, config } = this.deps;
    const { conversation_id: id } = membership;
    const read = await store.messages.events(id, after, config.RESUME_MAX + 1);
    const changes = read.length > config.RESUME_MAX ? null : read;
    const statuses = (changes?.length ?? 0) > 0;
    if (membership.conversation_type === "channel") {
      // Its members' receipts go to their own devices only (messages/service.ts): the user's own positions,
      // which the membership read has. The status of its messages needs the lowest of its thousands of
      // members: two index entries of each kind.
      const own: ServerFrame = {
        type: "receipts",
        conversation_id: id,
        members: [
          {
            user_id: membership.user_id,
            delivered: membership.delivered_seq,
            read: membership.last_read_seq,
          },
        ],
      };
      return {
        changes,
        floor: statuses ? await store.conversations.positionFloor(id) : NO_FLOOR,
        ...(held === undefined ? {} : { receipts: (encoding: Encoding) => encode(own, encoding) }),
      };
    }
    const told = held === undefined || held === membership.receipts_version;
    if (told && !statuses) return { changes, floor: NO_FLOOR };
    // Every member's positions, read once for every resume at this receipts version.
    const snapshot = await this.receipts.snapshot(id, membership.receipts_version, () =>
      store.conversations.participants(id),
    );
    return { changes, floor: snapshot.floor, ...(told ? {} : { receipts: snapshot.frame }) };
  }
}

/**
 * The public channels a socket is in, made at its first subscribe or unsubscribe: a public socket is in its
 * path's channel from the start, and it takes one of the WS_MAX_CHANNELS.
 */
function channelsOf(me: Socket["data"]): Set<string> {
  me.channels ??= new Set(me.kind === "public" ? [me.channel] : []);
  return me.channels;
}

/**
 * Runs `work` once the socket's previous work in `turns` is done (whether it failed or not); the next
 * waits for this one.
 */
function inTurn(turns: WeakMap<Socket, Promise<void>>, ws: Socket, work: () => Promise<void>): Promise<void> {
  const before = turns.get(ws);
  const mine = before ? before.then(work) : work();
  const quiet = mine.catch(() => {});
  turns.set(ws, quiet);
  void quiet.then(() => {
    if (turns.get(ws) === quiet) turns.delete(ws);
  });
  return mine;
}
