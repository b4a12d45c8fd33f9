// The broker across nodes: Redis pub/sub. A node subscribes to a channel only while it has sockets there,
// publishes bytes prefixed with its id and drops its own when they come back. Socket counts per user live
// in one hash per user, a field per node; a node's fields count only while its heartbeat key lives, so a
// node that died without closing its sockets stops holding its users online, and the first live node to
// sweep finds the users it held (a set per node) so that they can be written offline. A node that loses
// Redis for a while puts its share back as it is once it reconnects, and says so (gateway reconciles).

import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "../lib/logger.ts";
import { closeRedis, openRedis } from "../lib/redis.ts";
import { within } from "../lib/within.ts";
import {
  BEAT_SCRIPT,
  COUNT,
  LEAVE_SCRIPT,
  type ScriptedRedis,
  SETTLE,
  SWEEP,
  withScripts,
} from "./presence-scripts.ts";
import type { Broker } from "./types.ts";

export const DEFAULT_PREFIX = "parley:";
/** A node's heartbeat lives this long and is renewed three times within it. */
const NODE_TTL_MS = 30_000;
const JOIN_TIMEOUT_MS = 5000;
/**
 * How long after a reconnect a count of 0 is not trusted: time for the other nodes, whose connections come
 * back on their own backoff (RECONNECT_MAX_MS, 2 s at most between tries), to put their counts back.
 */
const SETTLE_MS = 3000;
/**
 * How long a node that found Redis emptied waits before it says so: a node whose connections held (Redis
 * flushed, not restarted) finds its heartbeat gone at its next beat (NODE_TTL_MS / 3), and puts its counts
 * back within a moment (SETTLE_MS, as after a reconnect).
 */
const EMPTIED_WAIT_MS = NODE_TTL_MS / 3 + SETTLE_MS;
/** Users per command when a node's counts go back or its users are settled. */
const BATCH = 1000;
/** How long a readiness check waits for a connection that is being made. */
const PING_WAIT_MS = 1000;
/** The node id every published message starts with (a node drops its own when they come back). */
export const ID_BYTES = 8;

export interface RedisBrokerOptions {
  /** Prepended to every channel and key: two deployments can share one Redis. */
  prefix?: string;
  /** How long a join may wait for Redis before it fails (the socket waiting for it is told to reconnect). */
  joinTimeoutMs?: number;
  /** How long after a reconnect counts are not trusted for an offline write (tests make it short). */
  settleMs?: number;
  /**
   * How long after finding Redis emptied the node waits to say so (onEmptied): every live node has found
   * it too by then and put its counts back (tests make it short).
   */
  emptiedWaitMs?: number;
}

export class RedisBroker implements Broker {
  readonly nodeId: string;
  readonly shared = true;
  readonly joined = new Set<string>();
  private readonly id: Buffer;
  /** Starts every key. */
  private readonly prefix: string;
  /**
   * Starts every channel: the prefix, and the database when it is not 0. Keys are each database's own, but
   * Redis's pub/sub knows no database: two deployments on databases 1 and 2 of one Redis would hear each
   * other's node-wide traffic and public channels.
   */
  private readonly channelPrefix: string;
  private readonly joinTimeoutMs: number;
  private readonly settleMs: number;
  private readonly emptiedWaitMs: number;
  private readonly pub: ScriptedRedis;
  private readonly sub: Redis;
  /** Subscriptions sent and not yet confirmed: a second join of the channel waits for the first. */
  private pending = new Map<string, Promise<void>>();
  private handler: ((channel: string, payload: Uint8Array) => void) | undefined;
  private lostHandler: ((channel: string, payload: Uint8Array) => void) | undefined;
  /** This node's sockets per user, as told: what its fields in Redis must say. */
  private mine = new Map<string, number>();
  private heartbeat: ReturnType<typeof setInterval>;
  /** A connection was lost since counts were last put back (the next 'ready' of both puts them back). */
  private lost = false;
  private closing = false;
  private settledNow = true;
  private settleTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectListeners: ((downMs: number) => void)[] = [];
  /** When a connection dropped after both had been up (performance.now()): how long the node was deaf. */
  private lostSince = 0;
  private settledListeners: (() => void)[] = [];
  private emptiedListeners: (() => void)[] = [];
  /** Redis was found emptied before anyone listened: the first listener is told at once. */
  private emptiedUntold = false;
  /**
   * The command connection failed and has not been ready since (before its first connect, commands wait):
   * publishes are dropped and counts fail at once rather than queue for a reconnect.
   */
  private pubDown = false;
  /** Users written offline whose claim is still listed in owed:<id>: taken off in one command per turn. */
  private written = new Set<string>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(url: string, logger: Logger, options: RedisBrokerOptions = {}) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.joinTimeoutMs = options.joinTimeoutMs ?? JOIN_TIMEOUT_MS;
    this.settleMs = options.settleMs ?? SETTLE_MS;
    this.emptiedWaitMs = options.emptiedWaitMs ?? EMPTIED_WAIT_MS;
    this.id = randomBytes(ID_BYTES);
    this.nodeId = this.id.toString("hex");
    // Commands wait for a connection (at boot) but give up after one failed reconnect.
    const pub = openRedis(url, logger, "broker redis", {
      maxRetriesPerRequest: 1,
      // Commands of one turn leave in one write: a commit's batch of messages, presence to every peer.
      enableAutoPipelining: true,
      connectionName: `parley-broker-${this.nodeId}`,
    });
    this.pub = withScripts(pub);
    const db = pub.options.db ?? 0;
    this.channelPrefix = db === 0 ? this.prefix : `${this.prefix}db${db}:`;
    // Subscriptions wait for the connection and come back by themselves after a reconnect.
    this.sub = openRedis(url, logger, "broker redis (subscriber)", {
      autoResubscribe: true,
      connectionName: `parley-broker-sub-${this.nodeId}`,
    });
    this.sub.on("messageBuffer", (channel: Buffer, message: Buffer) => this.receive(channel, message));
    // While either connection is down, counts written or read may be wrong and what other nodes publish is
    // lost. Once both are back, this node's counts go back as they are (Redis may have restarted, or missed
    // decrements), and the node is told to look again at what it holds.
    this.pub.on("close", () => {
      this.pubDown = true;
    });
    this.pub.on("ready", () => {
      this.pubDown = false;
    });
    for (const client of [this.pub, this.sub]) {
      client.on("close", () => this.lose());
      client.on("ready", () => void this.regain());
    }
    // The heartbeat as this node's beat expects it: made by a count instead, it would be taken for one
    // that had expired.
    this.pub.set(this.nodeKey(), "1", "PX", NODE_TTL_MS).catch(() => {});
    // Without Redis now, the reconnect looks (reassert).
    this.checkKept().catch(() => {});
    this.heartbeat = setInterval(() => void this.beat(), NODE_TTL_MS / 3);
    this.heartbeat.unref?.();
  }

  get settled() {
    return this.settledNow;
  }

  publish(channel: string, payload: Uint8Array) {
    // While Redis is down frames are dropped, not queued without bound: what other nodes miss of a
    // conversation's log their clients catch up with resume (the log is in the store, not in Redis).
    if (this.pubDown) return false;
    const message = Buffer.allocUnsafe(ID_BYTES + payload.byteLength);
    this.id.copy(message, 0);
    message.set(payload, ID_BYTES);
    this.pub.publish(this.channelPrefix + channel, message).catch(() => this.lostHandler?.(channel, payload));
    return true;
  }

  onLost(handler: (channel: string, payload: Uint8Array) => void) {
    this.lostHandler = handler;
  }

  async join(channels: readonly string[]) {
    const waits: Promise<void>[] = [];
    const fresh: string[] = [];
    for (const channel of channels) {
      const pending = this.pending.get(channel);
      if (pending) waits.push(pending);
      else if (!this.joined.has(channel)) fresh.push(channel);
    }
    if (fresh.length > 0) {
      for (const channel of fresh) this.joined.add(channel);
      const settle = (failed: boolean) => {
        for (const channel of fresh) {
          if (this.pending.get(channel) !== done) continue;
          this.pending.delete(channel);
          // Not known to be subscribed: the next join of the channel asks Redis again.
          if (failed) this.joined.delete(channel);
        }
        // A SUBSCRIBE that timed out is still queued and completes once Redis is back: undone behind it on
        // the same connection, or the node would be sent what it drops (the node joins again what it needs).
        const undo = failed ? fresh.filter((c) => !this.joined.has(c) && !this.pending.has(c)) : [];
        if (undo.length > 0) this.sub.unsubscribe(...undo.map((c) => this.channelPrefix + c)).catch(() => {});
      };
      const done: Promise<void> = within(
        this.sub.subscribe(...fresh.map((c) => this.channelPrefix + c)).then(() => {}),
        this.joinTimeoutMs,
        () => {
          throw new Error("broker redis: subscription timed out");
        },
      ).then(
        () => settle(false),
        (err: unknown) => {
          settle(true);
          throw err;
        },
      );
      for (const channel of fresh) this.pending.set(channel, done);
      waits.push(done);
    }
    await Promise.all(waits);
  }

  leave(channels: readonly string[]) {
    const names: string[] = [];
    for (const channel of channels) {
      if (!this.joined.delete(channel)) continue;
      this.pending.delete(channel);
      names.push(this.channelPrefix + channel);
    }
    if (names.length > 0) this.sub.unsubscribe(...names).catch(() => {});
  }

  onMessage(handler: (channel: string, payload: Uint8Array) => void) {
    this.handler = handler;
  }

  async countSockets(userId: string, delta: 1 | -1 | 0) {
    const count = Math.max(0, (this.mine.get(userId) ?? 0) + delta);
    if (count === 0) this.mine.delete(userId);
    else this.mine.set(userId, count);
    // A last close while counts are trusted claims the user's offline write for this node (another node's
    // settle() will not repeat it; this node's own, asked should the reply be lost, hands it back).
    const claim = delta === -1 && this.settledNow ? "1" : "0";
    // Queued, a count would wait for ioredis to give up on it (a reconnect or two, seconds apart): an upgrade
    // waiting on it is better told 503 now. The tally above is right; Redis is told it when it is back.
    if (this.pubDown) throw new Error("broker redis: not connected");
    const total = await this.pub[COUNT](this.prefix, this.nodeId, userId, delta, NODE_TTL_MS, claim);
    if (typeof total !== "number") throw new Error("broker redis: unexpected count reply");
    return total;
  }

  async settle(userIds: readonly string[]): Promise<string[]> {
    const gone: string[] = [];
    for (let i = 0; i < userIds.length; i += BATCH) {
      const batch = userIds.slice(i, i + BATCH);
      const users = await this.pub[SETTLE](this.prefix, this.nodeId, NODE_TTL_MS, ...batch);
      if (Array.isArray(users)) for (const u of users) if (typeof u === "string") gone.push(u);
    }
    return gone;
  }

  offlineWritten(userIds: readonly string[]) {
    for (const userId of userIds) this.written.add(userId);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flushWritten();
    }, 0);
  }

  /** Takes the written users off owed:<id>; what Redis could not be told stays for the next beat. */
  private async flushWritten(): Promise<void> {
    if (this.written.size === 0 || this.pubDown) return;
    const users = [...this.written];
    this.written.clear();
    try {
      for (let i = 0; i < users.length; i += BATCH)
        await this.pub.srem(this.owedKey(), ...users.slice(i, i + BATCH));
    } catch {
      for (const userId of users) this.written.add(userId);
    }
  }

  onReconnect(listener: (downMs: number) => void) {
    this.reconnectListeners.push(listener);
  }

  onSettled(listener: () => void) {
    this.settledListeners.push(listener);
  }

  onEmptied(listener: () => void) {
    this.emptiedListeners.push(listener);
    if (!this.emptiedUntold) return;
    this.emptiedUntold = false;
    listener();
  }

  async ping() {
    // Lost, as a count is: a readiness check answers now rather than when ioredis gives up on its PING.
    if (this.pubDown) throw new Error("broker redis: not connected");
    // Both connections: without the subscriber this node hears nothing of the others. Just after boot it
    // may still be connecting: that is waited for, briefly.
    await Promise.all([this.pub.ping(), connected(this.sub, PING_WAIT_MS)]);
  }

  async sweepDeadNodes(): Promise<string[]> {
    const nodes = (await this.pub.smembers(`${this.prefix}nodes`)).filter((id) => id !== this.nodeId);
    if (nodes.length === 0) return [];
    const alive = await Promise.all(nodes.map((id) => this.pub.exists(`${this.prefix}node:${id}`)));
    const gone: string[] = [];
    for (const [i, id] of nodes.entries()) {
      if (alive[i] === 1) continue;
      const users = await this.pub[SWEEP](this.prefix, id, this.nodeId, NODE_TTL_MS);
      if (Array.isArray(users)) for (const u of users) if (typeof u === "string") gone.push(u);
    }
    return gone;
  }

  async close() {
    this.closing = true;
    clearTimeout(this.settleTimer);
    clearInterval(this.heartbeat);
    this.handler = undefined;
    this.lostHandler = undefined;
    this.joined.clear();
    this.pending.clear();
    // Without its heartbeat this node's sockets stop counting at once on every other node; the users it
    // still held (sockets not closed first) are found by the next sweep, which needs it listed in `nodes`.
    // Holding none, it leaves the list itself: the last node of a deployment would leave it there for good.
    // With Redis out of reach the leave would wait for ioredis to give up on it (a reconnect or two, seconds
    // apart) and hold up the shutdown: it is skipped; the heartbeat expires by itself, and another node's
    // sweep takes this one off the list.
    clearTimeout(this.flushTimer);
    if (!this.pubDown) {
      await this.flushWritten();
      await this.pub
        .eval(
          LEAVE_SCRIPT,
          4,
          this.nodeKey(),
          this.usersKey(),
          `${this.prefix}nodes`,
          this.owedKey(),
          this.nodeId,
        )
        .catch(() => {});
    }
    await Promise.all([closeRedis(this.sub), closeRedis(this.pub)]);
  }

  /**
   * Renews the heartbeat (on a timer, three times per NODE_TTL_MS). If it had expired (this node stalled
   * past NODE_TTL_MS and may have been swept as dead), its counts go back too, and settle (revive).
   */
  async beat(): Promise<void> {
    try {
      void this.flushWritten();
      const kept = await this.pub.eval(BEAT_SCRIPT, 1, this.nodeKey(), NODE_TTL_MS);
      // After a loss the reconnect puts them back, not this; but a put-back that failed with both
      // connections up (an aborted MULTI, a read-only replica after a failover) is tried again here, or
      // the node would never trust its counts again.
      if (this.lost) await this.regain();
      else if (kept !== 1) await this.revive();
    } catch {}
  }

  /** A connection dropped: counts are not trusted until both are back and this node's are rewritten. */
  private lose() {
    if (this.closing) return;
    if (!this.lost) this.lostSince = performance.now();
    this.lost = true;
    this.settledNow = false;
    clearTimeout(this.settleTimer);
  }

  /** Both connections are back after a loss: counts go back, the node reconciles, then counts settle. */
  private async regain() {
    if (!this.lost || this.closing || this.pub.status !== "ready" || this.sub.status !== "ready") return;
    this.lost = false;
    try {
      await this.reassert();
    } catch {
      // Lost again on the way: the next reconnect does it all.
      this.lost = true;
      return;
    }
    if (this.lost || this.closing) return;
    const downMs = performance.now() - this.lostSince;
    for (const listener of this.reconnectListeners) listener(downMs);
    this.settleLater();
  }

  /**
   * The heartbeat had expired with both connections up (this node stalled past NODE_TTL_MS): another
   * node may have swept it, dropping its counts and writing its users offline. Its share goes back and
   * counts settle as after a reconnect (the gateway then looks again at the users it holds); nothing the
   * others said was lost (the subscriber held), so there is nothing to reconcile.
   */
  private async revive() {
    if (this.closing) return;
    this.settledNow = false;
    clearTimeout(this.settleTimer);
    try {
      await this.reassert();
    } catch (err) {
      // The next beat does it all, as after a loss.
      if (!this.lost) this.lostSince = performance.now();
      this.lost = true;
      throw err;
    }
    if (this.lost || this.closing) return;
    this.settleLater();
  }

  /** Counts are trusted again once the other nodes have had time to put theirs back. */
  private settleLater() {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settledNow = true;
      for (const listener of this.settledListeners) listener();
    }, this.settleMs);
    this.settleTimer.unref?.();
  }

  /**
   * Writes this node's share of the counts as it is: its heartbeat and membership, every count it holds,
   * and no field for the users it no longer holds (their sockets may have closed while Redis could not
   * hear of it). Decrements in flight meanwhile are no harm: each user is written from the tally at once.
   */
  private async reassert(): Promise<void> {
    await this.pub
      .multi()
      .set(this.nodeKey(), "1", "PX", NODE_TTL_MS)
      .sadd(`${this.prefix}nodes`, this.nodeId)
      .exec();
    const held = [...this.mine.keys()];
    for (let i = 0; i < held.length; i += BATCH) {
      const batch = this.pub.multi();
      for (const userId of held.slice(i, i + BATCH)) {
        const count = this.mine.get(userId);
        if (count === undefined) continue;
        batch.hset(`${this.prefix}sockets:${userId}`, this.nodeId, count);
        batch.sadd(this.usersKey(), userId);
      }
      await batch.exec();
    }
    // Read after the writes above, on the same connection: what is listed and not held now is stale. A
    // socket counted from here on is sent after these removals, so none of them can undo it.
    const listed = await this.pub.smembers(this.usersKey());
    const stale = listed.filter((userId) => !this.mine.has(userId));
    for (let i = 0; i < stale.length; i += BATCH) {
      const batch = this.pub.multi();
      for (const userId of stale.slice(i, i + BATCH)) {
        batch.hdel(`${this.prefix}sockets:${userId}`, this.nodeId);
        batch.srem(this.usersKey(), userId);
      }
      await batch.exec();
    }
    // This node's share is back: if the rest is gone (Redis restarted empty), the node that finds out says so.
    await this.checkKept();
  }

  /**
   * Whether Redis still holds what the nodes keep there: a key no node removes or lets expire, made by the
   * first node to find it missing, which alone tells its listeners (onEmptied).
   */
  private async checkKept(): Promise<void> {
    if ((await this.pub.set(`${this.prefix}kept`, "1", "NX")) !== "OK") return;
    const timer = setTimeout(() => {
      if (this.closing) return;
      if (this.emptiedListeners.length === 0) this.emptiedUntold = true;
      for (const listener of this.emptiedListeners) listener();
    }, this.emptiedWaitMs);
    timer.unref?.();
  }

  /** The users whose offline write this node claimed and has not said it wrote. */
  private owedKey() {
    return `${this.prefix}owed:${this.nodeId}`;
  }

  /** The users this node holds sockets of. */
  private usersKey() {
    return `${this.prefix}node-users:${this.nodeId}`;
  }

  private nodeKey() {
    return `${this.prefix}node:${this.nodeId}`;
  }

  private receive(rawChannel: Buffer, message: Buffer) {
    if (message.length < ID_BYTES || this.id.equals(message.subarray(0, ID_BYTES))) return;
    const channel = rawChannel.toString("utf8").slice(this.channelPrefix.length);
    // Left meanwhile: what was still in flight is not for this node any more.
    if (!this.joined.has(channel)) return;
    try {
      this.handler?.(channel, message.subarray(ID_BYTES));
    } catch {}
  }
}

/** Resolves once the client is connected, or rejects after `ms`; leaves no listener or timer behind. */
function connected(client: Redis, ms: number): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const ready = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off("ready", ready);
      reject(new Error("broker redis: not connected"));
    }, ms);
    client.once("ready", ready);
  });
}
