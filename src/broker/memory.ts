// The in-process broker: one node, synchronous delivery to local subscribers.

import type { Broker } from "./types.ts";

export class MemoryBroker implements Broker {
  private topics = new Map<string, Set<(event: unknown) => void>>();

  publish(topic: string, event: unknown) {
    const handlers = this.topics.get(topic);
    if (!handlers) return;
    for (const handler of handlers) {
      // A failing subscriber must not stop the others.
      try {
        handler(event);
      } catch {}
    }
  }

  subscribe(topic: string, handler: (event: unknown) => void) {
    let handlers = this.topics.get(topic);
    if (!handlers) {
      handlers = new Set();
      this.topics.set(topic, handlers);
    }
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0) this.topics.delete(topic);
    };
  }

  async close() {
    this.topics.clear();
  }
}
