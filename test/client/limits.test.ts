// The SDK within the server's limits: frames over the largest the server reads are refused before they
// are sent, a 1009 close drops the frame that caused it, frames are paced under the server's rate (and
// one refused as rate_limited is sent again later), and reconnects back off even when each connection
// opens before it is closed.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ParleyClient } from "../../src/client/index.ts";
import { CLOSE } from "../../src/realtime/frames.ts";
import {
  fakeConnection,
  fakeServer,
  holdReconnects,
  record,
  rejection,
  type Server,
  startServer,
} from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  s = await startServer({ WS_MAX_PAYLOAD: "1024", WS_RATE_PER_SECOND: "100", WS_RATE_BURST: "10" });
});
afterAll(() => s.stop());

const idOf = (c: ParleyClient) => c.session!.user.id;

describe("frame size", () => {
  it("refuses a message over the server's max_payload itself (payload_too_large): nothing sent, no reconnect", async () => {
    const [a, b] = [await s.client({ requestTimeoutMs: 2000 }), await s.client()];
    const conv = await a.rest.conversations.create({ conversation_type: "dm", participant_ids: [idOf(b)] });
    const hello = await a.connect();
    expect(hello).toMatchObject({ reconnected: false });
    const closes = record(a, "close");
    // 2000 bytes of content is a valid message (MAX_MESSAGE_LENGTH) but not a frame this server reads.
    const err = await rejection(a.realtime.send(conv.id, { content: "y".repeat(2000) }));
    expect(err.code).toBe("payload_too_large");
    expect(err.message).toContain("1024");
    const ack = await a.realtime.send(conv.id, { content: "small" });
    expect(ack.seq).toBeGreaterThan(0);
    expect(closes.items).toEqual([]);
  });

  it("drops the request a 1009 close was for (payload_too_large) instead of sending it again", async () => {
    // A server that does not say its limit (older, or a proxy with a smaller one) closes 1009 over it.
    const fake = fakeServer({ maxPayloadLength: 1024 });
    const rt = fakeConnection(fake.baseUrl);
    try {
      const closes = record(rt, "close");
      await rt.connect();
      const err = await rejection(rt.send("c", { content: "y".repeat(2000), client_msg_id: "big" }));
      expect(err.code).toBe("payload_too_large");
      expect(closes.items.map((c) => c.code)).toEqual([1009]);
      expect(await rt.send("c", { content: "small", client_msg_id: "s" })).toMatchObject({
        client_msg_id: "s",
      });
      expect(fake.upgrades).toBe(2);
      // What the close taught is kept: a frame as large is refused without being sent.
      const again = await rejection(rt.send("c", { content: "y".repeat(2000), client_msg_id: "big2" }));
      expect(again.code).toBe("payload_too_large");
      expect(fake.frames.map((f) => f.client_msg_id)).toEqual(["s"]);
      expect(closes.items).toHaveLength(1);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("frame rate", () => {
  it("paces a queue flushed at a reconnect, and sends made at once, under the server's rate: none refused", async () => {
    const [a, b] = [await s.client({ requestTimeoutMs: 5000 }), await s.client()];
    const conv = (await a.rest.conversations.create({ conversation_type: "dm", participant_ids: [idOf(b)] }))
      .id;
    await a.connect();
    const closes = record(a, "close");
    const { open } = holdReconnects(a);
    const refused = () => s.h.deps.metrics.rateLimited.get(["ws_frames"]);
    const before = refused();
    for (const ws of [...s.h.deps.gateway.connections.ofUser(idOf(a))]) ws.close(CLOSE.restart, "test");
    await closes.next();
    // 30 messages written while away, 10 frames of burst on the server: sent all at once, 20 were refused.
    const queued = Array.from({ length: 30 }, (_, i) => a.realtime.send(conv, { content: `away ${i}` }));
    open();
    const acks = await Promise.all(queued);
    const now = await Promise.all(
      Array.from({ length: 30 }, (_, i) => a.realtime.send(conv, { content: `now ${i}` })),
    );
    expect(new Set([...acks, ...now].map((x) => x.seq)).size).toBe(60);
    expect(refused()).toBe(before);
    expect(closes.items.map((c) => c.code)).toEqual([CLOSE.restart]);
  });

  it("sends a request refused as rate_limited again after a pause, a few times at most", async () => {
    let refuse = 2;
    const fake = fakeServer({
      hello: { rate_per_second: 1000, rate_burst: 1000 },
      answer: (f) =>
        f.type === "message" && refuse-- > 0
          ? { type: "error", ref: f.ref, code: "rate_limited", message: "slow down" }
          : { type: "ack", ref: f.ref, client_msg_id: f.client_msg_id, message_id: "m", seq: 1 },
    });
    const rt = fakeConnection(fake.baseUrl, { requestTimeoutMs: 5000 });
    try {
      await rt.connect();
      expect(await rt.send("c", { content: "x", client_msg_id: "k" })).toMatchObject({ client_msg_id: "k" });
      expect(fake.frames.filter((f) => f.type === "message")).toHaveLength(3);
      // A server that refuses it every time: after 5 more tries the refusal is the answer.
      refuse = Number.POSITIVE_INFINITY;
      const err = await rejection(rt.send("c", { content: "y", client_msg_id: "k2" }));
      expect(err.code).toBe("rate_limited");
      expect(fake.frames.filter((f) => f.client_msg_id === "k2")).toHaveLength(6);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("a request refused as rate_limited", () => {
  it("goes out again before the requests made after it that are still queued: messages keep their order", async () => {
    let refused = false;
    const fake = fakeServer({
      // 9 frames a second and a burst of 1 for the client: the first goes at once, the others wait.
      hello: { rate_per_second: 10, rate_burst: 2 },
      answer: (f) => {
        if (f.type !== "message") return undefined;
        if (!refused) {
          refused = true;
          return { type: "error", ref: f.ref, code: "rate_limited", message: "slow down" };
        }
        return { type: "ack", ref: f.ref, client_msg_id: f.client_msg_id, message_id: "m", seq: 1 };
      },
    });
    const rt = fakeConnection(fake.baseUrl, { requestTimeoutMs: 5000 });
    try {
      await rt.connect();
      await Promise.all(["m1", "m2", "m3", "m4"].map((k) => rt.send("c", { content: k, client_msg_id: k })));
      const sent = fake.frames.filter((f) => f.type === "message").map((f) => f.client_msg_id);
      // The first was refused; what the server took after it is in the order sent.
      expect(sent).toEqual(["m1", "m1", "m2", "m3", "m4"]);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("reconnect backoff", () => {
  it("grows across connections closed soon after their hello, and starts again after one that stayed up", async () => {
    let closeAtOnce = true;
    const fake = fakeServer({ opened: (ws) => closeAtOnce && ws.close(4000, "again") });
    const rt = fakeConnection(fake.baseUrl, { backoff: { minMs: 20, maxMs: 5000, resetAfterMs: 200 } });
    try {
      const opens = record(rt, "open");
      const at: number[] = [];
      rt.on("open", () => at.push(Date.now()));
      await rt.connect();
      // Delays drawn from [10, 20], [20, 40], [40, 80], [80, 160], [160, 320] ms: the last is long.
      await opens.count(6, undefined, 5000);
      closeAtOnce = false;
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      expect(gaps[4]!).toBeGreaterThanOrEqual(150);
      // This one stays up past resetAfterMs: after its close the next reconnect comes within minMs.
      await opens.count(7, undefined, 5000);
      const up = at.length;
      await Bun.sleep(250);
      closeAtOnce = true;
      for (const ws of fake.sockets) ws.close(4000, "restart");
      const closedAt = Date.now();
      await opens.count(up + 1, undefined, 2000);
      // Within minMs (10-20 ms), where a backoff not started again would wait 640 ms or more: the bound
      // leaves a loaded machine room.
      expect(at[up]! - closedAt).toBeLessThan(500);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});
