// Fanout: frames to Bun topics, encoded once per encoding, and (scale-out) to the other nodes through the
// broker. Each node here is a Fanout over a recording stand-in for Bun's server and sockets; the nodes
// share an in-process MemoryBus, so what crosses between them is the bytes a Redis broker would carry.

import { describe, expect, it } from "bun:test";
import type { Server } from "bun";
import { unpack } from "msgpackr";
import { MemoryBroker, MemoryBus } from "../../src/broker/memory.ts";
import type { Broker } from "../../src/broker/types.ts";
import { Connections, type Socket } from "../../src/realtime/connections.ts";
import { bunTopic, Fanout, type RelayHooks, topics } from "../../src/realtime/fanout.ts";
import { MISSED_MAX } from "../../src/realtime/outage.ts";
import type { Encoding, ServerFrame } from "../../src/realtime/protocol.ts";
import { type Missed, NODE_WIDE, RELAY, relayMessage } from "../../src/realtime/relay.ts";
import { rejection, waitFor } from "../helpers.ts";

/** Bun's server as far as Fanout uses it: topics with subscribers, and what was published to each. */
function recordingServer(listening: string[] = []) {
  const subscribers = new Map<string, Set<FakeSocket>>();
  const published: { topic: string; data: Uint8Array | string }[] = [];
  const server = {
    subscriberCount: (topic: string) =>
      (subscribers.get(topic)?.size ?? 0) + (listening.includes(topic) ? 1 : 0),
    publish: (topic: string, data: Uint8Array | string) => {
      published.push({ topic, data });
      for (const ws of subscribers.get(topic) ?? []) ws.received.push(read(data));
      return 1;
    },
  };
  return { server, subscribers, published };
}

interface FakeSocket {
  data: { kind: "user"; user_id: string; session_id: string; encoding: Encoding; moves: number };
  received: Record<string, unknown>[];
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  isSubscribed(topic: string): boolean;
  send(data: Uint8Array | string): number;
  close(): void;
}

function fakeSocket(
  subscribers: Map<string, Set<FakeSocket>>,
  userId: string,
  sessionId: string,
  encoding: Encoding,
): FakeSocket {
  const ws: FakeSocket = {
    data: { kind: "user" as const, user_id: userId, session_id: sessionId, encoding, moves: 0 },
    received: [] as Record<string, unknown>[],
    subscribe(topic: string) {
      const set = subscribers.get(topic) ?? new Set();
      subscribers.set(topic, set);
      set.add(ws);
    },
    unsubscribe(topic: string) {
      subscribers.get(topic)?.delete(ws);
      if (subscribers.get(topic)?.size === 0) subscribers.delete(topic);
    },
    isSubscribed: (topic: string) => subscribers.get(topic)?.has(ws) ?? false,
    send(data: Uint8Array | string) {
      ws.received.push(read(data));
      return 1;
    },
    close() {
      for (const set of subscribers.values()) set.delete(ws);
    },
  };
  return ws;
}

const read = (data: Uint8Array | string) =>
  (typeof data === "string" ? JSON.parse(data) : unpack(data)) as Record<string, unknown>;

/** One node: its connections, recording server and Fanout, and what its hooks heard. */
function node(
  broker: Broker,
  listening: string[] = [],
  peers: Record<string, string[]> = {},
  hooks: Partial<RelayHooks> = {},
) {
  const connections = new Connections();
  const { server, subscribers, published } = recordingServer(listening);
  const heard = {
    forgotten: [] as string[],
    revoked: [] as string[][],
    failed: [] as unknown[],
    missed: [] as Missed[],
    reconciles: 0,
    retold: [] as string[][],
  };
  const fanout = new Fanout(connections, broker, {
    forget: (id) => heard.forgotten.push(id),
    revoked: (ids) => heard.revoked.push(ids),
    failed: (err) => heard.failed.push(err),
    peersOf: async (id) => peers[id] ?? [],
    missed: (missed) => heard.missed.push(missed),
    reconcile: () => heard.reconciles++,
    retell: (users) => heard.retold.push(users),
    ...hooks,
  });
  fanout.attach(server as unknown as Server<unknown>);
  const open = async (
    userId: string,
    sessionId = `s-${userId}`,
    encoding: Encoding = "msgpack",
    ...extra: string[]
  ) => {
    const ws = fakeSocket(subscribers, userId, sessionId, encoding);
    connections.add(ws as unknown as Socket);
    await fanout.subscribe(ws as unknown as Socket, topics.user(userId), ...extra);
    return ws;
  };
  return { fanout, connections, server, published, heard, open, broker };
}

const presence: ServerFrame = { type: "presence", user_id: "u-1", status: "online", last_seen: null };

function publicSockets(connections: Connections, encodings: Encoding[]) {
  for (const encoding of encodings)
    connections.add({ data: { kind: "public", encoding, ip: "127.0.0.1" } } as unknown as Socket);
}

describe("Fanout.publishEach", () => {
  it("encodes once for every topic with subscribers and skips the rest", () => {
    const listening = ["u-2", "u-3", "u-5"].map((id) => bunTopic(topics.user(id), "msgpack"));
    const { fanout, published, connections } = node(new MemoryBroker(), listening);
    publicSockets(connections, ["msgpack"]);
    fanout.publishEach(["u-2", "u-3", "u-4", "u-5"], topics.user, presence);
    expect(published.map((p) => p.topic)).toEqual(listening);
    // The same bytes, not three encodings of the frame.
    expect(new Set(published.map((p) => p.data)).size).toBe(1);
    expect(unpack(published[0]?.data as Uint8Array)).toEqual(presence);
  });

  it("encodes for each encoding spoken, and not at all when nobody listens", () => {
    const user = (id: string, e: Encoding) => bunTopic(topics.user(id), e);
    const listening = [user("u-2", "msgpack"), user("u-2", "json"), user("u-3", "json")];
    const { fanout, published, connections } = node(new MemoryBroker(), listening);
    publicSockets(connections, ["msgpack", "json"]);
    fanout.publishEach(["u-2", "u-3"], topics.user, presence);
    expect(published.map((p) => p.topic)).toEqual(listening);
    expect(typeof published[0]?.data).not.toBe("string");
    expect(JSON.parse(published[1]?.data as string)).toEqual(presence);
    expect(published[2]?.data).toBe(published[1]?.data as string);

    const quiet = node(new MemoryBroker());
    publicSockets(quiet.connections, ["msgpack", "json"]);
    quiet.fanout.publishEach(["u-9"], topics.user, presence);
    expect(quiet.published).toEqual([]);
  });
});

describe("Fanout across nodes", () => {
  it("answers a subscription the broker cannot make with unavailable, not an internal error", async () => {
    const broker = new MemoryBroker(new MemoryBus());
    broker.join = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:6379"));
    const a = node(broker);
    const failure = await rejection(a.open("u-1"));
    expect(failure).toMatchObject({ code: "unavailable", status: 503 });
    expect(failure.message).not.toContain("ECONNREFUSED");
  });

  it("relays the very msgpack bytes to another node, which makes JSON only for its JSON sockets", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus));
    const sender = await a.open("u-1", "s-1", "msgpack", topics.conversation("c-1"));
    const binary = await b.open("u-2", "s-2", "msgpack", topics.conversation("c-1"));
    const text = await b.open("u-3", "s-3", "json", topics.conversation("c-1"));
    const frame: ServerFrame = { type: "typing", conversation_id: "c-1", user_id: "u-1", state: "start" };
    a.fanout.publish(topics.conversation("c-1"), frame);
    await waitFor(() => (text.received.length > 0 ? true : undefined));
    expect(sender.received).toEqual([frame]);
    expect(binary.received).toEqual([frame]);
    expect(text.received).toEqual([frame]);
    const onA = a.published.find((p) => p.topic === "c:c-1|m")?.data;
    const onB = b.published.find((p) => p.topic === "c:c-1|m")?.data;
    expect(onB).toEqual(onA as Uint8Array);
    // A node does not hear itself.
    expect(a.published.filter((p) => p.topic === "c:c-1|m")).toHaveLength(1);
  });

  it("does not encode for other nodes when the broker has none", () => {
    const alone = node(new MemoryBroker());
    let packed = 0;
    const broker = alone.broker;
    const publish = broker.publish.bind(broker);
    broker.publish = (channel, payload) => {
      packed++;
      return publish(channel, payload);
    };
    alone.fanout.publish(topics.conversation("c-1"), presence);
    expect(packed).toBe(0);
    expect(alone.published).toEqual([]);
  });

  it("brings a newcomer's sockets on another node into the conversation, each frame once", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus));
    await a.open("u-1", "s-1", "msgpack", topics.conversation("c-1"));
    const member = await b.open("u-2", "s-2", "msgpack", topics.conversation("c-1"));
    const newcomer = await b.open("u-3", "s-3", "json");
    a.fanout.onEvent({ kind: "participant.added", conversation_id: "c-1", seq: 4, user_id: "u-3" });
    await waitFor(() => (newcomer.received.length > 0 ? true : undefined));
    const added = {
      type: "event",
      kind: "participant.added",
      conversation_id: "c-1",
      seq: 4,
      user_id: "u-3",
    };
    expect(member.received).toEqual([added]);
    expect(newcomer.received).toEqual([added]);
    expect(b.heard.forgotten).toContain("c-1");
    expect(b.broker.joined.has(topics.conversation("c-1"))).toBe(true);

    // From now on the newcomer gets the conversation's frames like anyone.
    const typing: ServerFrame = { type: "typing", conversation_id: "c-1", user_id: "u-1", state: "start" };
    a.fanout.publish(topics.conversation("c-1"), typing);
    await waitFor(() => (newcomer.received.length > 1 ? true : undefined));
    expect(newcomer.received[1]).toEqual(typing);
    expect(member.received[1]).toEqual(typing);
  });

  it("tells a leaver's node to stop, after the leaver got the removal", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus));
    await a.open("u-1", "s-1", "msgpack", topics.conversation("c-1"));
    const leaver = await b.open("u-2", "s-2", "msgpack", topics.conversation("c-1"));
    a.fanout.onEvent({ kind: "participant.removed", conversation_id: "c-1", seq: 5, user_id: "u-2" });
    await waitFor(() => (b.heard.forgotten.length >= 2 ? true : undefined));
    expect(leaver.received.map((f) => f.kind)).toEqual(["participant.removed"]);
    expect(leaver.isSubscribed("c:c-1|m")).toBe(false);
    a.fanout.publish(topics.conversation("c-1"), presence);
    await Bun.sleep(5);
    expect(leaver.received).toHaveLength(1);
  });

  it("creates a conversation on every node of its members, its frame naming only whom the event shows", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus));
    const creator = await a.open("u-1");
    const [x, y] = [await b.open("u-2"), await b.open("u-3")];
    a.fanout.onEvent({
      kind: "conversation.created",
      conversation_id: "c-9",
      seq: 1,
      participant_ids: ["u-1"],
      joining: ["u-1", "u-2", "u-3"],
    });
    await waitFor(() => (y.received.length > 0 ? true : undefined));
    for (const ws of [creator, x, y]) {
      expect(ws.received.map((f) => f.kind)).toEqual(["conversation.created"]);
      // Who joins is the server's to know (a channel's readers are not told of each other).
      expect(ws.received[0]).not.toHaveProperty("joining");
      expect(ws.received[0]?.participant_ids).toEqual(["u-1"]);
    }
    expect(x.isSubscribed("c:c-9|m") && y.isSubscribed("c:c-9|m")).toBe(true);
  });

  it("reaches a device on another node, and only that device", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus));
    await a.open("u-1");
    const phone = await b.open("u-2", "s-phone");
    const laptop = await b.open("u-2", "s-laptop");
    const frame: ServerFrame = {
      type: "key_exchange",
      from_user_id: "u-1",
      from_device_id: "s-1",
      payload: "k",
    };
    a.fanout.toSession("s-phone", "u-2", frame);
    await waitFor(() => (phone.received.length > 0 ? true : undefined));
    expect(phone.received).toEqual([frame]);
    expect(laptop.received).toEqual([]);
  });

  it("tells other nodes of a presence change once; each sends it to the peers it has sockets of", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus), [], { "u-1": ["u-2", "u-3", "u-4"] });
    await b.broker.join([NODE_WIDE]);
    const [peer, stranger] = [await b.open("u-2"), await b.open("u-9")];
    let sent = 0;
    const publish = a.broker.publish.bind(a.broker);
    a.broker.publish = (channel, payload) => {
      sent++;
      return publish(channel, payload);
    };
    const online: ServerFrame = { type: "presence", user_id: "u-1", status: "online", last_seen: null };
    // Many peers: node B looks them up (its peersOf answers u-2, u-3, u-4).
    const many = Array.from({ length: 300 }, (_, i) => `u-x${i}`);
    a.fanout.toPeers("u-1", many, online);
    await waitFor(() => (peer.received.length > 0 ? true : undefined));
    expect(sent).toBe(1);
    expect(peer.received).toEqual([online]);
    expect(stranger.received).toEqual([]);
    // Few peers: named in the message, and node B takes them as they are (u-9 is named this time).
    a.fanout.toPeers("u-1", ["u-9"], online);
    await waitFor(() => (stranger.received.length > 0 ? true : undefined));
    expect(peer.received).toHaveLength(1);
    // In order, however fast they come.
    const statuses = ["away", "dnd", "online", "offline"] as const;
    for (const status of statuses) a.fanout.toPeers("u-1", ["u-2"], { ...online, status });
    await waitFor(() => (peer.received.length === 5 ? true : undefined));
    expect(peer.received.slice(1).map((f) => f.status)).toEqual([...statuses]);
    expect(sent).toBe(6);
  });

  it("asks the store for a presence relayed here only where a peer of the user is connected", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const online: ServerFrame = { type: "presence", user_id: "u-1", status: "online", last_seen: null };
    let asked = 0;
    const presenceOf = async () => {
      asked++;
      return online;
    };
    const b = node(new MemoryBroker(bus), [], { "u-1": ["u-2"] }, { presenceOf });
    await b.broker.join([NODE_WIDE]);
    const stranger = await b.open("u-9");
    // Named, and looked up (its peersOf answers u-2): no peer of u-1 is connected to node B.
    a.fanout.toPeers("u-1", ["u-2"], online);
    a.fanout.toPeers(
      "u-1",
      Array.from({ length: 300 }, (_, i) => `u-x${i}`),
      online,
    );
    await Bun.sleep(50);
    expect([asked, stranger.received.length]).toEqual([0, 0]);
    const peer = await b.open("u-2");
    a.fanout.toPeers("u-1", ["u-2"], online);
    await waitFor(() => (peer.received.length > 0 ? true : undefined));
    expect([asked, peer.received]).toEqual([1, [online]]);
  });

  it("tells every node of revoked sessions", async () => {
    const bus = new MemoryBus();
    const a = node(new MemoryBroker(bus));
    const b = node(new MemoryBroker(bus));
    await b.broker.join([NODE_WIDE]);
    a.fanout.revoke(["s-1", "s-2"]);
    await waitFor(() => (b.heard.revoked.length > 0 ? true : undefined));
    expect(b.heard.revoked).toEqual([["s-1", "s-2"]]);
  });

  it("stops receiving channels no socket listens to, and keeps the node-wide one", async () => {
    const bus = new MemoryBus();
    const b = node(new MemoryBroker(bus));
    await b.broker.join([NODE_WIDE]);
    const ws = await b.open("u-2", "s-2", "msgpack", topics.conversation("c-1"));
    b.fanout.leaveIdle();
    expect([...b.broker.joined].sort()).toEqual([NODE_WIDE, "c:c-1", "u:u-2"].sort());
    ws.close();
    b.fanout.leaveIdle();
    expect([...b.broker.joined]).toEqual([NODE_WIDE]);
  });

  /** A broker whose Redis is out of reach (publishes dropped) or drops what is in flight (lost after). */
  class FlakyBroker extends MemoryBroker {
    state: "up" | "down" | "losing" = "up";
    private lost: ((channel: string, payload: Uint8Array) => void) | undefined;
    override onLost(handler: (channel: string, payload: Uint8Array) => void) {
      this.lost = handler;
    }
    override publish(channel: string, payload: Uint8Array) {
      if (this.state === "down") return false;
      if (this.state === "up") return super.publish(channel, payload);
      queueMicrotask(() => this.lost?.(channel, payload));
      return true;
    }
  }

  /** Node A on a FlakyBroker; node B listening to the node-wide channel. */
  async function flakyAndListening() {
    const bus = new MemoryBus();
    const flaky = new FlakyBroker(bus);
    const [a, b] = [node(flaky), node(new MemoryBroker(bus))];
    await b.broker.join([NODE_WIDE]);
    return { bus, flaky, a, b };
  }

  it("tells the others, once Redis is back, what it could not tell them meanwhile, and nothing if nothing", async () => {
    const { flaky, a, b } = await flakyAndListening();
    a.fanout.reconnected();
    await Bun.sleep(5);
    expect([b.heard.missed, b.heard.reconciles]).toEqual([[], 0]);
    flaky.state = "down";
    a.fanout.revoke(["s-1"]);
    a.fanout.onEvent({ kind: "participant.removed", conversation_id: "c-1", seq: 5, user_id: "u-2" });
    a.fanout.toPeers("u-3", ["u-4"], presence);
    // A message's frame: no one to look at again, but its conversation's sockets elsewhere are behind.
    a.fanout.onEvent({ kind: "message.deleted", conversation_id: "c-2", seq: 6, message_id: "m-1" });
    flaky.state = "losing";
    a.fanout.revoke(["s-2"]);
    a.fanout.onEvent({ kind: "participant.added", conversation_id: "c-3", seq: 1, user_id: "u-5" });
    await Bun.sleep(5);
    flaky.state = "up";
    a.fanout.reconnected();
    await waitFor(() => (b.heard.missed.length > 0 ? true : undefined));
    const [missed] = b.heard.missed;
    expect({
      conversations: missed?.conversation_ids.sort(),
      users: missed?.user_ids.sort(),
      sessions: missed?.session_ids.sort(),
      presence: missed?.presence_ids,
      heads: missed?.head_ids.sort(),
    }).toEqual({
      conversations: ["c-1", "c-3"],
      users: ["u-2", "u-5"],
      sessions: ["s-1", "s-2"],
      presence: ["u-3"],
      // Every conversation whose changes were lost, the message's too: their sockets learn where logs stand.
      heads: ["c-1", "c-2", "c-3"],
    });
    // Told once.
    a.fanout.reconnected();
    await Bun.sleep(5);
    expect([b.heard.missed.length, b.heard.reconciles]).toEqual([1, 0]);
  });

  it("past MISSED_MAX ids missed, tells the others to look at everything, and again if that is lost too", async () => {
    const { flaky, a, b } = await flakyAndListening();
    flaky.state = "down";
    a.fanout.revoke(Array.from({ length: MISSED_MAX + 1 }, (_, i) => `s-${i}`));
    flaky.state = "losing";
    a.fanout.reconnected();
    await Bun.sleep(5);
    flaky.state = "up";
    a.fanout.reconnected();
    await waitFor(() => (b.heard.reconciles > 0 ? true : undefined));
    await Bun.sleep(5);
    expect([b.heard.missed, b.heard.reconciles]).toEqual([[], 1]);
  });

  it("tells a node back from being deaf the presence changes it relayed in that time, and not older ones", async () => {
    const { bus, flaky, a, b } = await flakyAndListening();
    await a.broker.join([NODE_WIDE]);
    b.fanout.toPeers("u-1", [], presence);
    a.fanout.reconnected(0);
    await waitFor(() => (b.heard.retold.length > 0 ? true : undefined));
    expect(b.heard.retold).toEqual([["u-1"]]);
    // A notice for the last few milliseconds only: u-1's change is older.
    await Bun.sleep(30);
    new MemoryBroker(bus).publish(NODE_WIDE, relayMessage({ kind: RELAY.deaf, ms: 5 }));
    await Bun.sleep(5);
    expect(b.heard.retold).toHaveLength(1);
    // A notice lost on its way is made again at the next reconnect.
    flaky.state = "down";
    a.fanout.reconnected(0);
    flaky.state = "up";
    await Bun.sleep(5);
    expect(b.heard.retold).toHaveLength(1);
    a.fanout.reconnected(0);
    await waitFor(() => (b.heard.retold.length > 1 ? true : undefined));
  });

  it("drops bytes it cannot read, and says so", async () => {
    const bus = new MemoryBus();
    const b = node(new MemoryBroker(bus));
    await b.open("u-2");
    const stranger = new MemoryBroker(bus);
    stranger.publish("u:u-2", new Uint8Array([42, 1, 2]));
    stranger.publish("u:u-2", new Uint8Array([2, 0xc1]));
    await waitFor(() => (b.heard.failed.length === 2 ? true : undefined));
  });
});
