// A large catch-up cut short keeps its progress: the SDK delivers a resume's changes as they come and moves
// the conversation's position with each, so that the socket closing partway resumes from the last change the
// app got, not from where the first resume started; live messages sent meanwhile come once, in order.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ConversationEvent } from "../../src/client/events.ts";
import type { ParleyClient } from "../../src/client/index.ts";
import { leastBackpressureLimit } from "../../src/realtime/frame-bound.ts";
import { CLOSE } from "../../src/realtime/protocol.ts";
import { holdReconnects, record, type Server, startServer } from "./helpers.ts";

const BACKLOG = 400;
/** A change's frame: about 2 KB, so that the backlog is many times the socket's pacing mark. */
const CONTENT = 2000;
/** The least limit this message length takes (config.ts), about 173 KiB: its pacing mark a quarter of that. */
const MAX_MESSAGE_LENGTH = CONTENT + 100;

let s: Server;
beforeAll(async () => {
  s = await startServer({
    MAX_MESSAGE_LENGTH: String(MAX_MESSAGE_LENGTH),
    // One reaction a message: the limit is the content's (these messages are reacted to by no one).
    MAX_REACTIONS_PER_MESSAGE: "1",
    WS_BACKPRESSURE_LIMIT: String(
      leastBackpressureLimit({ MAX_MESSAGE_LENGTH, MAX_REACTIONS_PER_MESSAGE: 1, MAX_GROUP_MEMBERS: 1024 }),
    ),
    RATE_LIMIT_PER_MINUTE: "100000",
    RATE_LIMIT_BURST: "100000",
    WS_RATE_PER_SECOND: "5000",
    WS_RATE_BURST: "5000",
  });
});
afterAll(() => s.stop());

const idOf = (c: ParleyClient) => c.session!.user.id;

function dropSockets(c: ParleyClient) {
  for (const ws of [...s.h.deps.gateway.connections.ofUser(idOf(c))]) ws.close(CLOSE.restart, "test");
}

/** The positions of every resume frame the client sends. */
function resumesOf(c: ParleyClient): Record<string, number>[] {
  const sent: Record<string, number>[] = [];
  const sender = (c.realtime as unknown as { sender: { transmit(frame: Record<string, unknown>): unknown } })
    .sender;
  const transmit = sender.transmit.bind(sender);
  sender.transmit = (frame) => {
    if (frame.type === "resume") sent.push({ ...(frame.positions as Record<string, number>) });
    return transmit(frame);
  };
  return sent;
}

describe("a catch-up cut short", () => {
  it("resumes from the last change the app got, and delivers every change once, in order", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const { id: conv } = await a.rest.conversations.create({
      conversation_type: "group",
      participant_ids: [idOf(b)],
    });
    const [events, closes, resumed] = [record(b, "event"), record(b, "close"), record(b, "resumed")];
    await Promise.all([a.connect(), b.connect()]);
    const resumes = resumesOf(b);
    await resumed.next((r) => r.conversation_id === conv);
    const start = b.realtime.positions[conv] ?? 0;

    // Away: a backlog builds up.
    const held = holdReconnects(b);
    dropSockets(b);
    await closes.next();
    for (let i = 1; i <= BACKLOG; i++)
      await a.rest.messages.send(conv, { content: `away ${i} ${"x".repeat(CONTENT)}` });

    // Back: live messages are sent while the catch-up is coming, and the socket is left partway through it
    // as the heartbeat leaves a dead link (the frames on their way are not read: on loopback the server's
    // close would come after the whole catch-up, already in the kernel's buffers).
    const live: number[] = [];
    let cut: number | undefined;
    let cutSent = false;
    let sending: Promise<void> | undefined;
    b.on("event", (e) => {
      if (e.conversation_id !== conv || !e.replayed) return;
      sending ??= (async () => {
        for (let i = 1; i <= 3; i++) live.push((await a.realtime.send(conv, { content: `live ${i}` })).seq);
      })();
      if (!cutSent && e.seq >= start + BACKLOG / 4) {
        cutSent = true;
        cut = b.realtime.positions[conv];
        (b.realtime as unknown as { link: { leaveDeadLink(): void } }).link.leaveDeadLink();
      }
    });
    const before = resumes.length;
    held.open();
    await closes.count(2, () => true, 10_000);
    await resumed.next((r) => r.conversation_id === conv && r.seq >= start + BACKLOG, 20_000);
    await sending;
    await events.next((e) => e.conversation_id === conv && e.seq === live.at(-1), 10_000);

    // The catch-up was cut short: its first resume started at the original position, the next one at the
    // last change delivered before the close.
    expect(cut).toBeDefined();
    expect(cut as number).toBeLessThan(start + BACKLOG);
    const after = resumes.slice(before).map((r) => r[conv]);
    expect(after[0]).toBe(start);
    expect(after[1]).toBe(cut as number);
    expect(after[1] as number).toBeGreaterThan(start);

    // Every change once, in order: the backlog, then the live messages.
    const seqs = events.items.filter((e) => e.conversation_id === conv && e.seq > start).map((e) => e.seq);
    const head = live.at(-1) as number;
    expect(seqs).toEqual(Array.from({ length: head - start }, (_, i) => start + 1 + i));
    const contents = (e: ConversationEvent) => e.message?.content?.split(" ").slice(0, 2).join(" ");
    const liveSeen = events.items.filter((e) => live.includes(e.seq)).map(contents);
    expect(liveSeen).toEqual(["live 1", "live 2", "live 3"]);
  }, 60_000);
});
