// Hub events -> frames on Bun topics, on this node and (scale-out) every other. Each frame is encoded at
// most once per encoding and published as the same bytes to every subscriber, in native code: never a
// JavaScript loop over sockets. Other nodes get the plain msgpack bytes through the broker (relay.ts).

import type { Server } from "bun";
import type { Broker } from "../broker/types.ts";
import { AppError } from "../lib/errors.ts";
import type { Counter } from "../lib/metrics.ts";
import { decode, ENCODING_TAG, encode } from "./codec.ts";
import type { Connections, Socket } from "./connections.ts";
import { toFrame } from "./event-frames.ts";
import type { ConversationEvent, ConversationEventKind } from "./hub.ts";
import { Outage } from "./outage.ts";
import { ENCODINGS, type Encoding, type ServerFrame } from "./protocol.ts";
import {
  type Missed,
  NODE_WIDE,
  parseRelayed,
  RELAY,
  type Relayed,
  relayFrame,
  relayMessage,
} from "./relay.ts";

/** Logical topics: one per conversation, user and public channel, the same on every node. */
export const topics = {
  conversation: (id: string) => `c:${id}`,
  user: (id: string) => `u:${id}`,
  channel: (name: string) => `p:${name}`,
};

/** The Bun topic of a logical one for the sockets of one encoding (a frame is encoded once for each). */
export const bunTopic = (topic: string, encoding: Encoding) => `${topic}|${ENCODING_TAG[encoding]}`;

/** A presence relay names the peers when there are at most this many (~7 KB); past it, nodes look them up. */
const PEERS_IN_RELAY = 256;
/** Changes after which what a node knows of a conversation's members is stale. */
const MEMBERSHIP: ReadonlySet<ConversationEventKind> = new Set([
  "conversation.created",
  "conversation.deleted",
  "participant.added",
  "participant.removed",
  "participant.updated",
]);

/** What a node does on other nodes' word that is not a frame: the gateway and the caches act on these. */
export interface RelayHooks {
  /** The conversation's members changed on another node. */
  forget(conversationId: string): void;
  /** Sessions were revoked on another node. */
  revoked(sessionIds: string[]): void;
  /** Everyone who shares a conversation with the user (presence from another node goes to them). */
  peersOf(userId: string): Promise<string[]>;
  /**
   * The user's presence frame as the store has it now (null: no such user). Presence is told here as it
   * is read when its turn comes, not as the frame says: two nodes writing one user's presence at once may
   * relay their frames in the other order than they wrote, and peers would keep the one overtaken.
   */
  presenceOf?(userId: string): Promise<ServerFrame | null>;
  /** Another node lost Redis for a while and has it again: what it said meanwhile was lost, unlisted. */
  reconcile?(): void;
  /** Another node lost Redis for a while and has it again: this is what it could not say meanwhile. */
  missed?(missed: Missed): void;
  /** Another node could not hear these users' presence changes (it lost Redis): to be told again. */
  retell?(userIds: string[]): void;
  /**
   * A relayed message this node could not read or act on ("relay"), or a channel it could not join for
   * its sockets ("join": Redis out of reach or slow; the node joins it again as it tends, see rejoin).
   */
  failed(err: unknown, what: "relay" | "join"): void;
  /** Counts messages to and from the other nodes (metrics); dropped: not handed to the broker (Redis down). */
  counters?: { published: Counter; received: Counter; dropped: Counter };
}

export class Fanout {
  private server: Server<unknown> | null = null;
  /** Presence from other nodes, one after the other: each waits for its peers, and order must hold. */
  private presenceChain: Promise<void> = Promise.resolve();
  /** Channels whose join failed while sockets here wanted them: joined again by rejoin(). */
  private unjoined = new Set<string>();
  /** What this node's outages from Redis left unsaid, told once it is back (reconnected). */
  private outage = new Outage();
  /** Channels joined ahead of the sockets that will listen to them (joinAhead), by how many wait: not idle. */
  private ahead = new Map<string, number>();

  constructor(
    private connections: Connections,
    private broker: Broker,
    private hooks: RelayHooks,
  ) {
    broker.onMessage((channel, payload) => {
      hooks.counters?.received.inc();
      this.receive(channel, payload);
    });
    broker.onLost((channel, payload) => this.lost(channel, payload));
  }

  /** One message to the other nodes' subscribers of a channel; false when it was dropped (Redis out of reach). */
  private relay(channel: string, payload: Uint8Array): boolean {
    if (this.broker.publish(channel, payload)) {
      this.hooks.counters?.published.inc();
      return true;
    }
    this.hooks.counters?.dropped.inc();
    this.lost(channel, payload);
    return false;
  }

  /**
   * A relay the other nodes did not get (dropped, or lost in flight): what they would not know, kept and
   * told once Redis is back (reconnected). A message's frame leaves its conversation's sockets elsewhere
   * behind (told where the log stands); a change of members, who listens; a device's frame, nothing kept.
   */
  private lost(channel: string, payload: Uint8Array) {
    let message: Relayed;
    try {
      message = parseRelayed(payload, (bytes) => decode(bytes, "msgpack"));
    } catch {
      return;
    }
    const id = [channel.slice(2)];
    switch (message.kind) {
      case RELAY.frame:
        if (channel.startsWith("c:")) this.outage.miss({ head_ids: id });
        return;
      case RELAY.membershipFrame:
        if (channel.startsWith("c:")) this.outage.miss({ conversation_ids: id, head_ids: id });
        return;
      case RELAY.join:
      case RELAY.leave:
        return this.outage.miss({ user_ids: id });
      case RELAY.revoke:
        return this.outage.miss({ session_ids: message.session_ids });
      case RELAY.presence:
        return this.outage.miss({ presence_ids: [message.user_id] });
      case RELAY.missed: {
        const { kind: _, ...missed } = message;
        return this.outage.miss(missed);
      }
      case RELAY.reconcile:
        return this.outage.miss("all");
      case RELAY.deaf:
        return this.outage.deafNoticeLost(message.ms);
      // Nothing kept: each node that had the start ends it itself (typedElsewhere).
      case RELAY.typing:
      case RELAY.session:
        return;
    }
  }

  attach(server: Server<unknown>) {
    this.server ??= server;
  }

  /**
   * Subscribes the socket to the topics here and, with other nodes, the node to their channels; resolves
   * once frames published anywhere after that reach the socket.
   */
  subscribe(ws: Socket, ...topicList: string[]): Promise<void> {
    for (const topic of topicList) ws.subscribe(bunTopic(topic, ws.data.encoding));
    return this.join(...topicList);
  }

  /**
   * With other nodes, the node joins the channels ahead of the socket that will listen to them, and holds
   * them while `work` runs (the opening socket's conversations are read): what another node says there
   * meanwhile is heard (a user's membership changes move their sockets that `connections` holds), and the
   * node's tending does not leave them as idle, no socket here listening yet.
   */
  async joinAhead<T>(topicList: string[], work: () => Promise<T>): Promise<T> {
    for (const topic of topicList) this.ahead.set(topic, (this.ahead.get(topic) ?? 0) + 1);
    try {
      await this.join(...topicList);
      return await work();
    } finally {
      for (const topic of topicList) {
        const left = (this.ahead.get(topic) ?? 1) - 1;
        if (left > 0) this.ahead.set(topic, left);
        else this.ahead.delete(topic);
      }
    }
  }

  /** With other nodes, the node joins their channels (the topics' of a socket subscribed here). */
  private join(...topicList: string[]): Promise<void> {
    if (!this.broker.shared) return Promise.resolve();
    // The broker's Redis out of reach is an outage, not the client's fault: `unavailable`, try again.
    // (The broker logs the outage; the client is not told its internals.) The socket keeps the topics here.
    return this.broker.join(topicList).catch(() => {
      for (const topic of topicList) this.unjoined.add(topic);
      throw new AppError("unavailable", "the other nodes cannot be reached; try again");
    });
  }

  /**
   * Joins again the channels whose join failed and that a socket here still listens to. A reconnect makes
   * the node join what its sockets need (reconcile.ts), but a join that timed out with the connection up
   * (a slow Redis) is followed by none: without this the socket would hear only this node's frames.
   */
  async rejoin(): Promise<void> {
    const wanted = [...this.unjoined].filter((c) => !this.broker.joined.has(c) && this.listened(c));
    this.unjoined.clear();
    if (wanted.length === 0) return;
    try {
      await this.broker.join(wanted);
    } catch (err) {
      for (const channel of wanted) this.unjoined.add(channel);
      throw err;
    }
  }

  unsubscribe(ws: Socket, topic: string) {
    ws.data.moves++;
    ws.unsubscribe(bunTopic(topic, ws.data.encoding));
    this.left?.(ws, topic);
  }

  /** Told of each socket taken out of a topic (its user removed): the gateway ends what it typed there. */
  left: ((ws: Socket, topic: string) => void) | undefined;

  /**
   * Told of each member made a reader (role member), here or on another node: the gateway ends what they
   * typed in a channel, where readers do not type.
   */
  demoted: ((conversationId: string, userId: string) => void) | undefined;

  /** Told of each typing frame from another node: the gateway keeps its end in hand (relay.ts, typing). */
  typedElsewhere: ((frame: TypingFrame) => void) | undefined;

  isSubscribed(ws: Socket, topic: string): boolean {
    return ws.isSubscribed(bunTopic(topic, ws.data.encoding));
  }

  /** Publishes one frame to a topic's subscribers on every node; false when the other nodes' copy was dropped. */
  publish(topic: string, frame: ServerFrame, membership = false): boolean {
    const msgpack = this.publishHere(topic, frame);
    if (!this.broker.shared) return true;
    const kind = membership ? RELAY.membershipFrame : frame.type === "typing" ? RELAY.typing : RELAY.frame;
    return this.relay(topic, relayFrame(msgpack ?? (encode(frame, "msgpack") as Uint8Array), kind));
  }

  /**
   * Publishes one frame to a topic's subscribers on every node, or on none: false, with nothing sent, when
   * the other nodes' copy would be dropped (Redis out of reach). For a frame that nothing keeps, which a
   * caller told so sends again: each subscriber then gets it once.
   */
  publishEverywhere(topic: string, frame: ServerFrame): boolean {
    if (
      this.broker.shared &&
      !this.relay(topic, relayFrame(encode(frame, "msgpack") as Uint8Array, RELAY.frame))
    )
      return false;
    this.publishHere(topic, frame);
    return true;
  }

  /** Publishes one frame to a topic's subscribers on this node only. */
  tellHere(topic: string, frame: ServerFrame) {
    this.publishHere(topic, frame);
  }

  /**
   * Sends a frame to the sockets of one device (session) of the user, wherever they are. A device has a
   * socket or two, so they are looked up rather than each subscribed to a topic of its own (a topic per
   * socket costs its memory on every idle connection). False when the other nodes' copy was dropped.
   */
  toSession(sessionId: string, userId: string, frame: ServerFrame): boolean {
    this.toSessionHere(sessionId, frame);
    if (!this.broker.shared) return true;
    return this.relay(
      topics.user(userId),
      relayMessage({ kind: RELAY.session, session_id: sessionId, frame }),
    );
  }

  /**
   * A user's presence to the user topics of their peers, wherever they are. Other nodes are told once (a
   * message per peer made a group of 1,000 coming online a million), with the peers named when they are
   * few, and otherwise find them in the store themselves.
   */
  toPeers(userId: string, peers: string[], frame: ServerFrame) {
    if (!this.broker.shared) return this.publishEach(peers, topics.user, frame);
    // In turn with the presence relayed from other nodes, as the store has it then (see presenceOf).
    this.presenceHere(userId, peers, frame);
    const named = peers.length <= PEERS_IN_RELAY ? { peers } : {};
    this.outage.presenceRelayed(userId);
    this.relay(NODE_WIDE, relayMessage({ kind: RELAY.presence, user_id: userId, frame, ...named }));
  }

  /**
   * Publishes one frame to the topics of many ids on this node, encoding it at most once per encoding
   * however many topics it goes to, and only where someone listens.
   */
  publishEach(ids: Iterable<string>, topicOf: (id: string) => string, frame: ServerFrame) {
    const server = this.server;
    if (!server) return;
    for (const encoding of ENCODINGS) {
      if (this.connections.speaking(encoding) === 0) continue;
      let bytes: Uint8Array | string | undefined;
      for (const id of ids) {
        const topic = bunTopic(topicOf(id), encoding);
        if (server.subscriberCount(topic) === 0) continue;
        bytes ??= encode(frame, encoding);
        server.publish(topic, bytes);
      }
    }
  }

  /**
   * This node had lost Redis for `downMs` and has it again: the others are told what it could not tell
   * them meanwhile, and look again at that (or, past MISSED_MAX ids, at everything; nothing missed,
   * nothing is said), and to tell again the presence changes it could not hear.
   */
  reconnected(downMs = 0) {
    if (!this.broker.shared) return;
    // Since the first outage not told yet: a notice lost on its way is made again, longer, next time.
    this.relay(NODE_WIDE, relayMessage({ kind: RELAY.deaf, ms: this.outage.deafFor(downMs) }));
    const missed = this.outage.takeMissed();
    if (missed === "all") this.relay(NODE_WIDE, relayMessage({ kind: RELAY.reconcile }));
    else if (missed) this.relay(NODE_WIDE, relayMessage({ kind: RELAY.missed, ...missed }));
  }

  /** Tells every node that these sessions are revoked (this node has closed its sockets already). */
  revoke(sessionIds: string[]) {
    if (this.broker.shared)
      this.relay(NODE_WIDE, relayMessage({ kind: RELAY.revoke, session_ids: sessionIds }));
  }

  /**
   * Applies membership changes to live subscriptions, then publishes the event to the conversation. Other
   * nodes get the frame on the conversation's channel, and a user who joins or leaves gets word on their
   * own channel, since a node with their sockets may not listen to the conversation yet (or any more).
   * Published in that order over one connection, the two arrive in that order: a node that has both the
   * newcomer and other members delivers the frame to the others, then to the newcomer directly, once each.
   */
  onEvent(event: ConversationEvent) {
    const id = event.conversation_id;
    // A receipt in a channel, or a reader added to one or removed: to the member's own devices alone
    // (messages/service.ts publishReceipt, conversations/service.ts tellReader).
    if (event.to_self === true && typeof event.user_id === "string") {
      const { to_self: _, ...told } = event;
      return this.toSelf(event.user_id, id, toFrame(told), event.kind);
    }
    const topic = topics.conversation(id);
    const joining =
      event.kind === "conversation.created" && Array.isArray(event.joining)
        ? event.joining
        : event.kind === "participant.added" && typeof event.user_id === "string"
          ? [event.user_id]
          : [];
    for (const userId of joining) this.joinHere(userId, id);
    const frame = toFrame(event);
    this.publish(topic, frame, MEMBERSHIP.has(event.kind));
    const leaving =
      event.kind === "participant.removed" && typeof event.user_id === "string" ? event.user_id : null;
    if (leaving) for (const ws of this.connections.ofUser(leaving)) this.unsubscribe(ws, topic);
    if (event.kind === "conversation.deleted") this.dropHere(topic);
    if (isDemotion(frame)) this.demoted?.(id, frame.user_id);
    if (!this.broker.shared) return;
    for (const userId of joining)
      this.relay(topics.user(userId), relayMessage({ kind: RELAY.join, conversation_id: id, frame }));
    if (leaving) this.relay(topics.user(leaving), relayMessage({ kind: RELAY.leave, conversation_id: id }));
  }

  /**
   * A frame for the user's own devices. A channel's reader added or removed (their change is not in the
   * conversation's log, nor told to its other members) moves their sockets on every node as any member's
   * add or removal does: joined before the frame, left after it. Other nodes get the join with its frame
   * (sent straight to the user's sockets there), or the frame then the leave, on the user's channel: in
   * that order over one connection, they arrive in that order.
   */
  private toSelf(userId: string, id: string, frame: ServerFrame, kind: ConversationEventKind) {
    const own = topics.user(userId);
    if (kind === "participant.added") {
      this.joinHere(userId, id);
      this.publishHere(own, frame);
      if (this.broker.shared) this.relay(own, relayMessage({ kind: RELAY.join, conversation_id: id, frame }));
      return;
    }
    this.publish(own, frame);
    if (kind !== "participant.removed") return;
    const topic = topics.conversation(id);
    for (const ws of this.connections.ofUser(userId)) this.unsubscribe(ws, topic);
    if (this.broker.shared) this.relay(own, relayMessage({ kind: RELAY.leave, conversation_id: id }));
  }

  /** Stops receiving the channels no socket of this node listens to any more (sockets close without telling). */
  leaveIdle() {
    const idle: string[] = [];
    for (const channel of this.broker.joined)
      if (channel !== NODE_WIDE && !this.ahead.has(channel) && !this.listened(channel)) idle.push(channel);
    if (idle.length > 0) this.broker.leave(idle);
  }

  /** Whether a socket of this node listens to the channel (in any encoding). */
  private listened(channel: string): boolean {
    const server = this.server;
    return !!server && ENCODINGS.some((encoding) => server.subscriberCount(bunTopic(channel, encoding)) > 0);
  }

  /**
   * Every socket of this node leaves a topic (its conversation was deleted): nothing reaches them there
   * any more, and what needs them subscribed (typing) is refused. Bun cannot list a topic's subscribers,
   * so the node's sockets are looked through until all of them are found: once per deletion, which is rare,
   * and not at all on a node where nobody listens.
   */
  private dropHere(topic: string) {
    const server = this.server;
    if (!server) return;
    let left = 0;
    for (const encoding of ENCODINGS) left += server.subscriberCount(bunTopic(topic, encoding));
    if (left === 0) return;
    for (const ws of this.connections.all) {
      if (!ws.unsubscribe(bunTopic(topic, ws.data.encoding))) continue;
      ws.data.moves++;
      if (--left === 0) return;
    }
  }

  /** Publishes here only; returns the msgpack bytes when it made them. */
  private publishHere(topic: string, frame: ServerFrame): Uint8Array | undefined {
    const server = this.server;
    if (!server) return undefined;
    let msgpack: Uint8Array | undefined;
    for (const encoding of ENCODINGS) {
      // No socket of this node speaks it: nothing to ask Bun about (most nodes serve one encoding).
      if (this.connections.speaking(encoding) === 0) continue;
      const bun = bunTopic(topic, encoding);
      if (server.subscriberCount(bun) === 0) continue;
      if (encoding === "msgpack") {
        msgpack = encode(frame, "msgpack") as Uint8Array;
        server.publish(bun, msgpack);
      } else server.publish(bun, encode(frame, encoding));
    }
    return msgpack;
  }

  private toSessionHere(sessionId: string, frame: ServerFrame) {
    const encoded: Partial<Record<Encoding, Uint8Array | string>> = {};
    for (const ws of this.connections.ofSession(sessionId)) {
      const encoding = ws.data.encoding;
      encoded[encoding] ??= encode(frame, encoding);
      ws.send(encoded[encoding]);
    }
  }

  /** The user's sockets on this node join the conversation (on every encoding they speak). */
  private joinHere(userId: string, conversationId: string) {
    const topic = topics.conversation(conversationId);
    for (const ws of this.connections.ofUser(userId)) {
      ws.data.moves++;
      this.subscribe(ws, topic).catch((err: unknown) => this.hooks.failed(err, "join"));
    }
  }

  /** Another node's word. */
  private receive(channel: string, payload: Uint8Array) {
    let message: Relayed;
    try {
      message = parseRelayed(payload, (bytes) => decode(bytes, "msgpack"));
    } catch (err) {
      return this.hooks.failed(err, "relay");
    }
    switch (message.kind) {
      case RELAY.membershipFrame: {
        if (!channel.startsWith("c:")) return this.publishBytesHere(channel, message.bytes);
        this.hooks.forget(channel.slice(2));
        // Membership changes are rare: read, to know a deletion (its sockets leave once they have it).
        const frame = decode(message.bytes, "msgpack") as { kind?: unknown } | null;
        this.publishBytesHere(channel, message.bytes, frame);
        if (frame?.kind === "conversation.deleted") this.dropHere(channel);
        if (isDemotion(frame)) this.demoted?.(channel.slice(2), frame.user_id);
        return;
      }
      case RELAY.frame:
        return this.publishBytesHere(channel, message.bytes);
      case RELAY.typing: {
        // Small, and one per keystroke burst at most: read, to know whose typing it is.
        const frame = decode(message.bytes, "msgpack");
        if (!isTyping(frame)) return this.hooks.failed(new Error("relay: not a typing frame"), "relay");
        this.publishBytesHere(channel, message.bytes, frame);
        this.typedElsewhere?.(frame);
        return;
      }
      case RELAY.join: {
        if (!channel.startsWith("u:")) return;
        const userId = channel.slice(2);
        this.hooks.forget(message.conversation_id);
        this.joinHere(userId, message.conversation_id);
        // Straight to the newcomer's sockets: they were not listening when the others got it.
        const encoded: Partial<Record<Encoding, Uint8Array | string>> = {};
        for (const ws of this.connections.ofUser(userId)) {
          encoded[ws.data.encoding] ??= encode(message.frame, ws.data.encoding);
          ws.send(encoded[ws.data.encoding] as Uint8Array | string);
        }
        return;
      }
      case RELAY.leave: {
        if (!channel.startsWith("u:")) return;
        this.hooks.forget(message.conversation_id);
        const topic = topics.conversation(message.conversation_id);
        for (const ws of this.connections.ofUser(channel.slice(2))) this.unsubscribe(ws, topic);
        return;
      }
      case RELAY.session:
        return this.toSessionHere(message.session_id, message.frame);
      case RELAY.revoke:
        return this.hooks.revoked(message.session_ids);
      case RELAY.reconcile:
        return this.hooks.reconcile?.();
      case RELAY.missed: {
        const { kind: _, ...missed } = message;
        return this.hooks.missed?.(missed);
      }
      case RELAY.deaf: {
        const users = this.outage.presenceWithin(message.ms);
        if (users.length > 0) this.hooks.retell?.(users);
        return;
      }
      case RELAY.presence: {
        if (this.connections.all.size === 0) return;
        const { user_id, frame, peers } = message;
        this.presenceHere(user_id, peers, frame);
        return;
      }
    }
  }

  /**
   * A user's presence to their peers' sockets here, after the presence told here before it: as the store
   * has it by then (presenceOf), so that the last frame every node gives is the last write, whichever
   * node made it and whatever order the nodes' frames came in. The frame given when the store cannot say.
   */
  private presenceHere(userId: string, peers: string[] | undefined, frame: ServerFrame) {
    this.presenceChain = this.presenceChain
      .then(async () => {
        // No user sockets here: nobody to tell, and no need to ask the store.
        if (this.connections.all.size === 0) return;
        const targets = peers ?? (await this.hooks.peersOf(userId));
        // Nor when none of the peers is connected here (a connect storm of users with no peer here).
        if (!targets.some((id) => this.connections.ofUser(id).size > 0)) return;
        const now = this.hooks.presenceOf ? await this.hooks.presenceOf(userId).catch(() => frame) : frame;
        if (now) this.publishEach(targets, topics.user, now);
      })
      .catch((err: unknown) => this.hooks.failed(err, "relay"));
  }

  /**
   * A frame another node encoded: the same bytes to plain msgpack sockets; for the other encodings it is
   * decoded once and encoded once each.
   */
  private publishBytesHere(topic: string, msgpack: Uint8Array, decoded?: unknown) {
    const server = this.server;
    if (!server) return;
    let frame = decoded;
    for (const encoding of ENCODINGS) {
      if (this.connections.speaking(encoding) === 0) continue;
      const bun = bunTopic(topic, encoding);
      if (server.subscriberCount(bun) === 0) continue;
      if (encoding === "msgpack") server.publish(bun, msgpack);
      else {
        frame ??= decode(msgpack, "msgpack");
        server.publish(bun, encode(frame, encoding));
      }
    }
  }
}

export type TypingFrame = Extract<ServerFrame, { type: "typing" }>;

/** A member made a reader (`participant.updated` to role member), whatever node made it. */
function isDemotion(frame: unknown): frame is { user_id: string } {
  const f = frame as { kind?: unknown; role?: unknown; user_id?: unknown } | null;
  return (
    typeof f === "object" &&
    f !== null &&
    f.kind === "participant.updated" &&
    f.role === "member" &&
    typeof f.user_id === "string"
  );
}

function isTyping(frame: unknown): frame is TypingFrame {
  const f = frame as Partial<TypingFrame> | null;
  return (
    typeof f === "object" &&
    f !== null &&
    f.type === "typing" &&
    typeof f.conversation_id === "string" &&
    typeof f.user_id === "string" &&
    (f.state === "start" || f.state === "stop")
  );
}
