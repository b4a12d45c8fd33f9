// The in-process broker. Alone (the default) it is one node: nothing to send to, socket counts kept here.
// Given a shared MemoryBus, several apps in one process act as nodes of one cluster (tests of scale-out
// without Redis); delivery is then asynchronous and in order, as over the network.

import { randomBytes } from "node:crypto";
import type { Broker } from "./types.ts";

/** What nodes of one process share: who listens to which channel, and every user's socket count. */
export class MemoryBus {
  readonly listeners = new Map<string, Set<MemoryBroker>>();
  /** user id -> node -> that node's sockets of the user. */
  readonly sockets = new Map<string, Map<MemoryBroker, number>>();
}

export class MemoryBroker implements Broker {
  readonly nodeId = randomBytes(8).toString("hex");
  readonly shared: boolean;
  readonly joined = new Set<string>();
  /** The bus is never lost: counts are always trusted, and there is never a reconnect. */
  readonly settled = true;
  private handler: ((channel: string, payload: Uint8Array) => void) | undefined;
  private bus: MemoryBus;

  constructor(bus?: MemoryBus) {
    this.shared = bus !== undefined;
    this.bus = bus ?? new MemoryBus();
  }

  publish(channel: string, payload: Uint8Array) {
    const nodes = this.bus.listeners.get(channel);
    if (!nodes) return true;
    for (const node of nodes) {
      if (node === this) continue;
      // A copy, as a network would make: the publisher may reuse its buffer.
      const bytes = payload.slice();
      queueMicrotask(() => node.deliver(channel, bytes));
    }
    return true;
  }

  async join(channels: readonly string[]) {
    for (const channel of channels) {
      this.joined.add(channel);
      let nodes = this.bus.listeners.get(channel);
      if (!nodes) {
        nodes = new Set();
        this.bus.listeners.set(channel, nodes);
      }
      nodes.add(this);
    }
  }

  leave(channels: readonly string[]) {
    for (const channel of channels) {
      this.joined.delete(channel);
      const nodes = this.bus.listeners.get(channel);
      nodes?.delete(this);
      if (nodes?.size === 0) this.bus.listeners.delete(channel);
    }
  }

  onMessage(handler: (channel: string, payload: Uint8Array) => void) {
    this.handler = handler;
  }

  async countSockets(userId: string, delta: 1 | -1 | 0) {
    const perNode = this.bus.sockets.get(userId) ?? new Map<MemoryBroker, number>();
    const mine = Math.max(0, (perNode.get(this) ?? 0) + delta);
    if (mine === 0) perNode.delete(this);
    else perNode.set(this, mine);
    if (perNode.size === 0) this.bus.sockets.delete(userId);
    else this.bus.sockets.set(userId, perNode);
    let total = 0;
    for (const count of perNode.values()) total += count;
    return total;
  }

  async ping() {}

  async settle(userIds: readonly string[]) {
    return userIds.filter((id) => !this.bus.sockets.has(id));
  }

  /** Nodes of one process close, they do not die: nothing is handed on. */
  offlineWritten() {}

  /** In process nothing is lost on the way: the handler is never called. */
  onLost(_handler: (channel: string, payload: Uint8Array) => void) {}

  onReconnect() {}

  onSettled() {}

  /** The bus is never emptied. */
  onEmptied() {}

  /** Nodes of one process close, they do not die: there is never anyone to sweep. */
  async sweepDeadNodes() {
    return [];
  }

  async close() {
    this.leave([...this.joined]);
    // A node that is gone holds nobody online.
    for (const [userId, perNode] of this.bus.sockets) {
      perNode.delete(this);
      if (perNode.size === 0) this.bus.sockets.delete(userId);
    }
    this.handler = undefined;
  }

  private deliver(channel: string, payload: Uint8Array) {
    // Left meanwhile: a message still in flight is not for this node any more.
    if (!this.joined.has(channel)) return;
    try {
      this.handler?.(channel, payload);
    } catch {}
  }
}
