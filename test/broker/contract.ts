// What every Broker must do, written once and run against each adapter: the in-process bus (nodes of one
// process) and Redis (nodes anywhere). `cluster(n)` gives n nodes of one fresh cluster.

import { afterAll, describe, expect, it } from "bun:test";
import type { Broker } from "../../src/broker/types.ts";
import { waitFor } from "../helpers.ts";

type Heard = { channel: string; payload: Uint8Array }[];

function listen(node: Broker): Heard {
  const heard: Heard = [];
  node.onMessage((channel, payload) => heard.push({ channel, payload: payload.slice() }));
  return heard;
}

const bytes = (...values: number[]) => new Uint8Array(values);

export function brokerContract(label: string, cluster: (n: number) => Broker[]) {
  describe(`broker contract: ${label}`, () => {
    const opened: Broker[] = [];
    const nodes = (n: number) => {
      const made = cluster(n);
      opened.push(...made);
      return made;
    };
    afterAll(() => Promise.all(opened.map((b) => b.close())));

    it("delivers to the other nodes that joined the channel, not to the publisher or the rest", async () => {
      const [a, b, c] = nodes(3) as [Broker, Broker, Broker];
      const [heardA, heardB, heardC] = [listen(a), listen(b), listen(c)];
      await Promise.all([a.join(["c:1"]), b.join(["c:1"]), c.join(["c:2"])]);
      expect(a.shared && b.shared).toBe(true);
      expect(a.nodeId).not.toBe(b.nodeId);
      a.publish("c:1", bytes(1, 2, 3));
      await waitFor(() => (heardB.length > 0 ? true : undefined));
      expect(heardB).toEqual([{ channel: "c:1", payload: bytes(1, 2, 3) }]);
      // A later message has had time to overtake anything wrongly sent to a or c.
      b.publish("c:1", bytes(9));
      await waitFor(() => (heardA.length > 0 ? true : undefined));
      expect(heardA).toEqual([{ channel: "c:1", payload: bytes(9) }]);
      expect(heardC).toEqual([]);
    });

    it("carries any bytes, large ones too, in the order they were published", async () => {
      const [a, b] = nodes(2) as [Broker, Broker];
      const heard = listen(b);
      await b.join(["u:bytes"]);
      const large = new Uint8Array(200_000).map((_, i) => (i * 31) % 256);
      const sent = [
        bytes(0),
        bytes(0, 0xff, 0x0a, 0x0d),
        large,
        ...Array.from({ length: 50 }, (_, i) => bytes(i)),
      ];
      for (const payload of sent) a.publish("u:bytes", payload);
      await waitFor(() => (heard.length === sent.length ? true : undefined));
      expect(heard.map((h) => h.payload)).toEqual(sent);
    });

    it("keeps a join's promise: what is published once it resolves arrives", async () => {
      const [a, b] = nodes(2) as [Broker, Broker];
      const heard = listen(b);
      const channels = Array.from({ length: 100 }, (_, i) => `c:join-${i}`);
      await b.join(channels);
      expect(channels.every((c) => b.joined.has(c))).toBe(true);
      for (const channel of channels) a.publish(channel, bytes(7));
      await waitFor(() => (heard.length === channels.length ? true : undefined));
      // Joining again is a no-op, and joins of one channel at once share one subscription.
      await Promise.all([b.join(["c:join-0"]), b.join(["c:join-0", "c:fresh"]), b.join(["c:fresh"])]);
      a.publish("c:fresh", bytes(8));
      await waitFor(() => (heard.length === channels.length + 1 ? true : undefined));
    });

    it("stops delivering a channel once the node leaves it", async () => {
      const [a, b] = nodes(2) as [Broker, Broker];
      const heard = listen(b);
      await b.join(["p:news", "p:other"]);
      b.leave(["p:news"]);
      expect(b.joined.has("p:news")).toBe(false);
      a.publish("p:news", bytes(1));
      a.publish("p:other", bytes(2));
      await waitFor(() => (heard.length > 0 ? true : undefined));
      await Bun.sleep(20);
      expect(heard).toEqual([{ channel: "p:other", payload: bytes(2) }]);
    });

    it("answers a ping once it is connected", async () => {
      const [a] = nodes(1) as [Broker];
      await a.ping();
    });

    it("counts a user's sockets across nodes", async () => {
      const [a, b] = nodes(2) as [Broker, Broker];
      const user = `count-${crypto.randomUUID()}`;
      expect(await a.countSockets(user, 1)).toBe(1);
      expect(await b.countSockets(user, 1)).toBe(2);
      // 0 asks without changing anything.
      expect(await b.countSockets(user, 0)).toBe(2);
      expect(await a.countSockets(user, 0)).toBe(2);
      expect(await b.countSockets(user, 1)).toBe(3);
      expect(await a.countSockets(user, -1)).toBe(2);
      expect(await b.countSockets(user, -1)).toBe(1);
      expect(await b.countSockets(user, -1)).toBe(0);
      // Never below zero, whatever a node says.
      expect(await a.countSockets(user, -1)).toBe(0);
      expect(await a.countSockets(user, 1)).toBe(1);
    });

    it("forgets a closed node's sockets", async () => {
      const [a, b] = nodes(2) as [Broker, Broker];
      const user = `gone-${crypto.randomUUID()}`;
      await a.countSockets(user, 1);
      await a.countSockets(user, 1);
      await a.close();
      expect(await b.countSockets(user, 1)).toBe(1);
    });
  });
}
