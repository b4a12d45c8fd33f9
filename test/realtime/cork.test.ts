// Replies sent after an await leave corked: outside Bun's own handlers every ws.send is a write of its
// own, so the sender's ack (with the event just published to it), the acks of messages committed together
// and a conversation's catch-up must go out inside one cork each. The dispatcher runs against the real services and store; only the socket is
// a recorder.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { unpack } from "msgpackr";
import { MemoryBroker } from "../../src/broker/memory.ts";
import { Connections, type Socket } from "../../src/realtime/connections.ts";
import { Dispatcher } from "../../src/realtime/dispatch.ts";
import { Fanout } from "../../src/realtime/fanout.ts";
import { Presence } from "../../src/realtime/presence.ts";
import type { ClientFrame } from "../../src/realtime/protocol.ts";
import { call, type Harness, harness, signup } from "../helpers.ts";

let h: Harness;
let dispatcher: Dispatcher;
let alice: Awaited<ReturnType<typeof signup>>;
let conversation: string;

beforeAll(async () => {
  h = await harness();
  const connections = new Connections();
  const fanout = new Fanout(connections, new MemoryBroker(), {
    forget: () => {},
    revoked: () => {},
    peersOf: async () => [],
    failed: () => {},
  });
  dispatcher = new Dispatcher(h.deps, fanout, new Presence(h.deps.store, h.deps.clock, fanout), connections);
  alice = await signup(h.app);
  const bob = await signup(h.app);
  const res = await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  conversation = res.body.id;
});
afterAll(() => h.close());

/** A socket that records each frame sent and the cork (numbered) it was sent in, 0 for none. */
function recorder() {
  const sent: { frame: Record<string, unknown>; cork: number }[] = [];
  let corks = 0;
  let current = 0;
  const ws = {
    data: { kind: "user", user_id: alice.id, session_id: alice.session_id, encoding: "msgpack" },
    readyState: 1,
    // Drained as soon as written: a catch-up is never paced here.
    getBufferedAmount: () => 0,
    cork<R>(fn: (ws: Socket) => R): R {
      // As uWS: a cork inside a cork is part of the outer one.
      if (current !== 0) return fn(ws as unknown as Socket);
      current = ++corks;
      try {
        return fn(ws as unknown as Socket);
      } finally {
        current = 0;
      }
    },
    send(bytes: Uint8Array) {
      sent.push({ frame: unpack(bytes), cork: current });
      return bytes.length;
    },
  };
  return { ws: ws as unknown as Socket, sent };
}

const message = (n: number): ClientFrame => ({
  type: "message",
  ref: n,
  conversation_id: conversation,
  client_msg_id: `cork-${n}`,
  content: `hello ${n}`,
});

describe("corked replies", () => {
  it("sends a message's ack inside a cork", async () => {
    const { ws, sent } = recorder();
    await dispatcher.handle(ws, message(1));
    expect(sent.map((s) => s.frame.type)).toEqual(["ack"]);
    expect(sent[0]?.cork).toBeGreaterThan(0);
  });

  it("sends the ok for a read receipt inside a cork", async () => {
    const { ws, sent } = recorder();
    await dispatcher.handle(ws, { type: "message_read", ref: 5, conversation_id: conversation, seq: 1 });
    expect(sent.map((s) => s.frame.type)).toEqual(["ok"]);
    expect(sent[0]?.cork).toBeGreaterThan(0);
  });

  it("sends a conversation's catch-up, events and resumed, inside one cork", async () => {
    const { ws: writer } = recorder();
    await dispatcher.handle(writer, message(2));
    await dispatcher.handle(writer, message(3));
    const { ws, sent } = recorder();
    await dispatcher.handle(ws, { type: "resume", ref: 9, positions: { [conversation]: 0 } });
    expect(sent.map((s) => [s.frame.type, s.frame.seq])).toEqual([
      ["event", 1],
      ["event", 2],
      ["event", 3],
      ["resumed", 3],
    ]);
    const corks = new Set(sent.map((s) => s.cork));
    expect(corks.size).toBe(1);
    expect([...corks][0]).toBeGreaterThan(0);
  });

  it("sends the acks of messages committed together inside one cork per socket, in order", async () => {
    const one = recorder();
    const two = recorder();
    // Sent in one turn: one group commit holds them all, and their acks are made in one run of microtasks.
    await Promise.all([
      ...[10, 11, 12, 13, 14].map((n) => dispatcher.handle(one.ws, message(n))),
      ...[20, 21, 22].map((n) => dispatcher.handle(two.ws, message(n))),
    ]);
    for (const [{ sent }, refs] of [
      [one, [10, 11, 12, 13, 14]],
      [two, [20, 21, 22]],
    ] as const) {
      expect(sent.map((s) => [s.frame.type, s.frame.ref])).toEqual(refs.map((ref) => ["ack", ref]));
      expect(new Set(sent.map((s) => s.cork)).size).toBe(1);
      expect(sent[0]?.cork).toBeGreaterThan(0);
    }
  });
});
