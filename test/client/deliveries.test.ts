// Delivery acks the SDK makes itself (autoAck): a sender sees its message delivered when another member's
// SDK has handed it to the app, live or caught up after a reconnect, without that app acking; acks are
// coalesced (one per conversation in flight, naming the highest seq handed over); none for the user's own
// messages; none with autoAck: false; one lost with its socket is made again on the next.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ParleyClient } from "../../src/client/index.ts";
import { CLOSE } from "../../src/realtime/protocol.ts";
import { waitFor } from "../helpers.ts";
import { fakeConnection, fakeServer, holdReconnects, record, type Server, startServer } from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  s = await startServer({ WS_RATE_PER_SECOND: "5000", WS_RATE_BURST: "5000" });
});
afterAll(() => s.stop());

const idOf = (c: ParleyClient) => c.session!.user.id;

type Sent = Record<string, unknown>;

/** A WebSocket that keeps every JSON frame the client writes (the client must use `encoding: "json"`). */
function spying(sent: Sent[]): typeof WebSocket {
  return class extends WebSocket {
    override send(data: string | ArrayBufferLike | ArrayBufferView | Blob) {
      if (typeof data === "string") sent.push(JSON.parse(data) as Sent);
      super.send(data);
    }
  };
}

const acksIn = (sent: Sent[], conversationId?: string) =>
  sent.filter(
    (f) => f.type === "message_ack" && (conversationId === undefined || f.conversation_id === conversationId),
  );

/** Closes every socket of the user from the server side, as a restart would. */
function dropSockets(c: ParleyClient) {
  for (const ws of [...s.h.deps.gateway.connections.ofUser(idOf(c))]) ws.close(CLOSE.restart, "test");
}

describe("delivery acks against the real server", () => {
  it("shows the sender a delivered receipt from a receiving SDK with default options, the app acking nothing", async () => {
    const aSent: Sent[] = [];
    const a = await s.client({ encoding: "json", WebSocket: spying(aSent) });
    const b = await s.client();
    const dm = await a.rest.conversations.create({ conversation_type: "dm", participant_ids: [idOf(b)] });
    const bEvents = record(b, "event");
    const receipts = record(a, "receipt");
    await Promise.all([a.connect(), b.connect()]);
    const sent = await a.realtime.send(dm.id, { content: "hello" });
    await bEvents.next((e) => e.seq === sent.seq);

    const delivered = await receipts.next((r) => r.user_id === idOf(b) && r.kind === "delivered");
    expect(delivered).toMatchObject({ conversation_id: dm.id, kind: "delivered", seq: sent.seq });
    expect(receipts.items.filter((r) => r.kind === "read")).toEqual([]);
    // The sender's own message is owed no ack.
    expect(acksIn(aSent)).toEqual([]);
  });

  it("coalesces a burst: few acks, the last naming the highest seq handed over; with autoAck: false, none", async () => {
    const [bSent, cSent] = [[] as Sent[], [] as Sent[]];
    const a = await s.client();
    const b = await s.client({ encoding: "json", WebSocket: spying(bSent) });
    const c = await s.client({ encoding: "json", WebSocket: spying(cSent), autoAck: false });
    const group = await a.rest.conversations.create({
      conversation_type: "group",
      participant_ids: [idOf(b), idOf(c)],
    });
    const [bEvents, cEvents] = [record(b, "event"), record(c, "event")];
    const receipts = record(a, "receipt");
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    const seqs = await Promise.all(
      Array.from({ length: 30 }, (_, i) => a.realtime.send(group.id, { content: `m${i}` })),
    );
    const last = Math.max(...seqs.map((x) => x.seq));
    await Promise.all([bEvents.next((e) => e.seq === last), cEvents.next((e) => e.seq === last)]);
    await receipts.next((r) => r.user_id === idOf(b) && r.kind === "delivered" && r.seq === last);

    const acks = acksIn(bSent, group.id);
    expect(acks.length).toBeGreaterThan(0);
    expect(acks.length).toBeLessThan(10);
    expect(acks.at(-1)?.seq).toBe(last);
    // Never past what the app was handed.
    expect(acks.every((f) => (f.seq as number) <= last)).toBe(true);

    // One more round of b's: c's ack, had it made one, would have gone long before b's second one.
    const more = await a.realtime.send(group.id, { content: "and one more" });
    await receipts.next((r) => r.user_id === idOf(b) && r.kind === "delivered" && r.seq === more.seq);
    expect(acksIn(cSent)).toEqual([]);
    expect(receipts.items.filter((r) => r.user_id === idOf(c))).toEqual([]);
  });

  it("acks the delivery of what a resume replayed after a reconnect", async () => {
    const a = await s.client();
    const b = await s.client();
    const dm = await a.rest.conversations.create({ conversation_type: "dm", participant_ids: [idOf(b)] });
    const resumed = record(b, "resumed");
    const bEvents = record(b, "event");
    const receipts = record(a, "receipt");
    await Promise.all([a.connect(), b.connect()]);
    await resumed.next((r) => r.conversation_id === dm.id);

    const { open } = holdReconnects(b);
    const closes = record(b, "close");
    dropSockets(b);
    await closes.next();
    let last = 0;
    for (let i = 0; i < 3; i++) last = (await a.realtime.send(dm.id, { content: `while away ${i}` })).seq;
    open();

    const replayed = await bEvents.next((e) => e.seq === last);
    expect(replayed.replayed).toBe(true);
    const delivered = await receipts.next(
      (r) => r.user_id === idOf(b) && r.kind === "delivered" && r.seq === last,
    );
    expect(delivered.conversation_id).toBe(dm.id);
  });
});

describe("delivery acks on the wire (fake server)", () => {
  const created = (conversationId: string, seq: number, senderId: string) => ({
    type: "event",
    kind: "message.created",
    conversation_id: conversationId,
    seq,
    message: { id: `m${seq}`, sender_id: senderId, content: "hi", created_at: "" },
  });

  it("makes an ack lost with its socket again on the next one, and none for the user's own messages", async () => {
    let sockets = 0;
    const server = fakeServer({
      opened: () => void sockets++,
      answer: (f, ws) => {
        if (f.type === "resume") {
          for (const id of Object.keys(f.positions as object))
            ws.send(JSON.stringify({ type: "resumed", conversation_id: id, seq: 0, ref: f.ref }));
          if (sockets === 1) {
            // Our own message in one conversation, another member's in the other.
            ws.send(JSON.stringify(created("mine", 1, "u")));
            ws.send(JSON.stringify(created("theirs", 1, "someone")));
          }
          return undefined;
        }
        // The first socket drops before answering the ack.
        if (f.type === "message_ack" && sockets === 1) return void ws.close(4000, "gone");
        return { type: "ok", ref: f.ref };
      },
    });
    const conn = fakeConnection(server.baseUrl, { positions: { mine: 0, theirs: 0 } });
    const opens = record(conn, "open");
    try {
      await conn.connect();
      await opens.next((o) => o.reconnected);
      await waitFor(() => (acksIn(server.frames).length >= 2 ? true : undefined));
      expect(acksIn(server.frames)).toEqual([
        { type: "message_ack", conversation_id: "theirs", seq: 1, ref: expect.any(Number) },
        { type: "message_ack", conversation_id: "theirs", seq: 1, ref: expect.any(Number) },
      ]);
    } finally {
      conn.close();
      server.stop();
    }
  });
});

describe("the autoAck option", () => {
  it("is refused at construction when it is not a boolean, naming it", () => {
    const bad = { autoAck: "yes" as unknown as boolean };
    expect(() => new ParleyClient({ baseUrl: s.baseUrl, ...bad })).toThrow(/autoAck/);
    expect(() => fakeConnection(s.baseUrl, bad)).toThrow(/autoAck/);
  });
});
