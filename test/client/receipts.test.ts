// Receipts that stay true across reconnects: a client away while its messages were read learns of it when
// it comes back (its resume asks where the receipts stand), once, marked replayed; in a channel, of its
// own user's reads alone; a resume that moves nothing tells nothing. Against the real server, then the
// resume frames the SDK writes (a fake server), then the SDK's receipt state on its own.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ReceiptEvent } from "../../src/client/events.ts";
import type { ParleyClient } from "../../src/client/index.ts";
import { Receipts } from "../../src/client/receipts.ts";
import { CLOSE } from "../../src/realtime/protocol.ts";
import { waitFor } from "../helpers.ts";
import { fakeConnection, fakeServer, holdReconnects, record, type Server, startServer } from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  s = await startServer({ WS_RATE_PER_SECOND: "5000", WS_RATE_BURST: "5000" });
});
afterAll(() => s.stop());

const idOf = (c: ParleyClient) => c.session!.user.id;

/** Closes every socket of the user from the server side, as a restart would. */
function dropSockets(c: ParleyClient) {
  for (const ws of [...s.h.deps.gateway.connections.ofUser(idOf(c))]) ws.close(CLOSE.restart, "test");
}

/** The version of the conversation's receipts the connection holds (what its next resume names). */
const held = (c: ParleyClient, conversationId: string) =>
  (c.realtime as unknown as { receiptState: Receipts }).receiptState.held(conversationId);

describe("receipts across a reconnect (real server)", () => {
  for (const encoding of ["msgpackr", "msgpack", "json"] as const) {
    it(`tells a sender who was away the read made meanwhile, once, marked replayed (${encoding})`, async () => {
      const [a, b] = [await s.client({ encoding }), await s.client({ encoding })];
      const dm = await a.rest.conversations.create({ conversation_type: "dm", participant_ids: [idOf(b)] });
      const resumed = record(a, "resumed");
      await a.connect();
      await resumed.next((r) => r.conversation_id === dm.id);
      const sent = await a.realtime.send(dm.id, { content: "are you there?" });
      const receipts = record(a, "receipt");

      // a's socket goes, and stays away while b reads.
      const { open } = holdReconnects(a);
      const closes = record(a, "close");
      dropSockets(a);
      await closes.next();
      await b.rest.messages.read(dm.id, sent.seq);
      expect(receipts.items).toEqual([]);
      const after = resumed.items.length;
      open();
      await resumed.count(after + 1, (r) => r.conversation_id === dm.id);

      expect(receipts.items).toEqual([
        {
          type: "receipt",
          conversation_id: dm.id,
          user_id: idOf(b),
          kind: "read",
          seq: sent.seq,
          replayed: true,
        },
      ]);
      expect(a.realtime.receipts(dm.id)[idOf(b)]).toEqual({ delivered: sent.seq, read: sent.seq });
    });
  }

  it("tells a device what its user's other devices read in a channel while it was away, and nothing of the other readers", async () => {
    const [owner, reader, other] = [await s.client(), await s.client(), await s.client()];
    const channel = await owner.rest.conversations.create({
      conversation_type: "channel",
      name: "news",
      participant_ids: [idOf(reader), idOf(other)],
    });
    const resumed = record(reader, "resumed");
    await reader.connect();
    await resumed.next((r) => r.conversation_id === channel.id);
    const post = await owner.rest.messages.send(channel.id, { content: "news" });
    const receipts = record(reader, "receipt");

    const { open } = holdReconnects(reader);
    const closes = record(reader, "close");
    dropSockets(reader);
    await closes.next();
    // The reader's other device (REST here) reads it, and so does another reader.
    await reader.rest.messages.read(channel.id, post.seq);
    await other.rest.messages.read(channel.id, post.seq);
    const after = resumed.items.length;
    open();
    await resumed.count(after + 1, (r) => r.conversation_id === channel.id);

    expect(receipts.items.map((r) => [r.user_id, r.kind, r.seq, r.replayed])).toEqual([
      [idOf(reader), "read", post.seq, true],
    ]);
    expect(reader.realtime.receipts(channel.id)).toEqual({
      [idOf(reader)]: { delivered: post.seq, read: post.seq },
    });
  });

  it("tells nothing when the resume's receipts move nothing it knew (it heard them live)", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await a.rest.conversations.create({
      conversation_type: "group",
      participant_ids: [idOf(b)],
    });
    const resumed = record(a, "resumed");
    await Promise.all([a.connect(), b.connect()]);
    await resumed.next((r) => r.conversation_id === conv.id);
    const first = held(a, conv.id);
    expect(first).not.toBeNull();
    const sent = await a.realtime.send(conv.id, { content: "read me" });
    const receipts = record(a, "receipt");
    await b.realtime.read(conv.id, sent.seq);
    // Heard live (not replayed).
    expect(await receipts.next((r) => r.kind === "read")).toMatchObject({ user_id: idOf(b), seq: sent.seq });
    expect(receipts.items[0]?.replayed).toBeUndefined();

    const after = resumed.items.length;
    dropSockets(a);
    await resumed.count(after + 1, (r) => r.conversation_id === conv.id);
    // The resume brought where the receipts stand (a newer version than the first connect's), and it
    // moved nothing: nothing more was told.
    expect(held(a, conv.id)).toBeGreaterThan(first as number);
    await Bun.sleep(30);
    expect(receipts.items).toHaveLength(1);
    expect(a.realtime.receipts(conv.id)[idOf(b)]).toEqual({ delivered: sent.seq, read: sent.seq });
  });
});

describe("the resume frames the SDK writes", () => {
  it("asks where the receipts stand at every hello and when heads say frames were lost, naming the version it holds, but not to fill a hole in the live events", async () => {
    const fake = fakeServer({
      answer: (f, ws) => {
        if (f.type !== "resume") return { type: "ok", ref: f.ref };
        for (const [id, seq] of Object.entries(f.positions as Record<string, number>)) {
          if (f.receipts)
            ws.send(
              JSON.stringify({
                type: "receipts",
                conversation_id: id,
                version: 9,
                members: [{ user_id: "u-other", delivered: seq, read: seq - 1 }],
              }),
            );
          ws.send(JSON.stringify({ type: "resumed", ref: f.ref, conversation_id: id, seq }));
        }
        return undefined;
      },
    });
    const rt = fakeConnection(fake.baseUrl, { positions: { "c-1": 4 } });
    const receipts = record(rt, "receipt");
    const resumes = () => fake.frames.filter((f) => f.type === "resume");
    try {
      await rt.connect();
      await waitFor(() => (resumes().length === 1 ? true : undefined));
      expect(resumes()[0]).toMatchObject({ positions: { "c-1": 4 }, receipts: { "c-1": null } });
      await receipts.count(2);
      expect(receipts.items.map((r) => [r.kind, r.seq, r.replayed])).toEqual([
        ["read", 3, true],
        ["delivered", 4, true],
      ]);

      // A live event that skips a seq: its resume fills the hole, and asks nothing of receipts.
      const [ws] = fake.sockets;
      ws?.send(JSON.stringify({ type: "event", kind: "message.deleted", conversation_id: "c-1", seq: 6 }));
      await waitFor(() => (resumes().length === 2 ? true : undefined));
      expect(resumes()[1]?.receipts).toBeUndefined();

      // Live frames lost between nodes (a heads frame past our position): its resume asks too.
      ws?.send(JSON.stringify({ type: "heads", conversations: { "c-1": 8 } }));
      await waitFor(() => (resumes().length === 3 ? true : undefined));
      expect(resumes()[2]).toMatchObject({ receipts: { "c-1": 9 } });

      // A reconnect asks again, naming the version it holds.
      ws?.close(4000, "restart");
      await waitFor(() => (resumes().length === 4 ? true : undefined));
      expect(resumes()[3]).toMatchObject({ receipts: { "c-1": 9 } });
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("the SDK's receipt state", () => {
  function state() {
    const told: ReceiptEvent[] = [];
    return { told, receipts: new Receipts((r) => told.push(r)) };
  }
  const live = (user_id: string, kind: "delivered" | "read", seq: number) =>
    ({ type: "receipt", conversation_id: "c-1", user_id, kind, seq }) as const;
  const snapshot = (version: number | undefined, members: [string, number, number][]) => ({
    type: "receipts" as const,
    conversation_id: "c-1",
    ...(version === undefined ? {} : { version }),
    members: members.map(([user_id, delivered, read]) => ({ user_id, delivered, read })),
  });

  it("moves positions forward only, and tells each move once whichever way it came", () => {
    const { told, receipts } = state();
    receipts.live(live("u-b", "delivered", 3));
    receipts.snapshot(snapshot(2, [["u-b", 3, 1]]));
    receipts.live(live("u-b", "read", 1));
    receipts.live(live("u-b", "delivered", 2));
    expect(told.map((r) => [r.kind, r.seq, r.replayed ?? false])).toEqual([
      ["delivered", 3, false],
      ["read", 1, true],
    ]);
    expect(receipts.of("c-1")).toEqual({ "u-b": { delivered: 3, read: 1 } });
  });

  it("takes a read as a delivery up to it, as the server's read is, and tells the read alone", () => {
    const { told, receipts } = state();
    receipts.snapshot(snapshot(1, [["u-b", 5, 5]]));
    receipts.live(live("u-b", "delivered", 5));
    expect(told.map((r) => [r.kind, r.seq])).toEqual([["read", 5]]);
    receipts.snapshot(snapshot(2, [["u-b", 8, 6]]));
    expect(told.map((r) => [r.kind, r.seq])).toEqual([
      ["read", 5],
      ["read", 6],
      ["delivered", 8],
    ]);
  });

  it("tells nothing of a snapshot that moves nothing, and keeps its version for the next resume", () => {
    const { told, receipts } = state();
    expect(receipts.held("c-1")).toBeNull();
    receipts.snapshot(snapshot(4, [["u-b", 2, 2]]));
    const before = told.length;
    receipts.snapshot(
      snapshot(7, [
        ["u-b", 2, 1],
        ["u-c", 0, 0],
      ]),
    );
    expect(told.length).toBe(before);
    expect(receipts.held("c-1")).toBe(7);
    // A channel's snapshot has no version: the one held stays.
    receipts.snapshot(snapshot(undefined, [["u-b", 2, 2]]));
    expect(receipts.held("c-1")).toBe(7);
  });

  it("tells a live `receipts` frame's moves as live receipts, unmarked, and keeps no version of it", () => {
    const { told, receipts } = state();
    receipts.snapshot(snapshot(4, [["u-b", 2, 1]]));
    receipts.snapshot({
      ...snapshot(undefined, [
        ["u-b", 3, 0],
        ["u-c", 0, 2],
      ]),
      live: true,
    });
    expect(told.slice(2).map((r) => [r.user_id, r.kind, r.seq, r.replayed ?? false])).toEqual([
      ["u-b", "delivered", 3, false],
      ["u-c", "read", 2, false],
    ]);
    expect(receipts.held("c-1")).toBe(4);
    expect(receipts.of("c-1")).toEqual({
      "u-b": { delivered: 3, read: 1 },
      "u-c": { delivered: 2, read: 2 },
    });
  });

  it("forgets a conversation entirely", () => {
    const { receipts } = state();
    receipts.snapshot(snapshot(4, [["u-b", 2, 2]]));
    receipts.forget("c-1");
    expect([receipts.held("c-1"), receipts.of("c-1")]).toEqual([null, {}]);
  });

  it("ignores members it cannot read rather than failing on them", () => {
    const { told, receipts } = state();
    receipts.snapshot({
      type: "receipts",
      conversation_id: "c-1",
      version: 1,
      members: [null, { user_id: 5 }, { user_id: "u-b", delivered: "x", read: 2 }] as never,
    });
    expect(told.map((r) => [r.user_id, r.kind, r.seq])).toEqual([["u-b", "read", 2]]);
  });
});
