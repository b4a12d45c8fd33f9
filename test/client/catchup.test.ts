// Catchup's answer to a `head` frame (where a conversation's log stands, sent after the server's node could
// not hear the others): resume when behind, ask where we joined when we have no position, else nothing.

import { describe, expect, it } from "bun:test";
import { Catchup } from "../../src/client/catchup.ts";
import type { ConversationEvent } from "../../src/client/events.ts";

function catchup() {
  const asked = { gap: [] as string[], unknown: [] as string[], delivered: [] as ConversationEvent[] };
  const c = new Catchup(
    "u-me",
    (event) => asked.delivered.push(event),
    (id) => asked.gap.push(id),
    (id) => asked.unknown.push(id),
  );
  return { c, asked };
}

describe("Catchup.head", () => {
  it("resumes a conversation whose log is past our position, and holds its live events meanwhile", () => {
    const { c, asked } = catchup();
    c.join("c-1", 3);
    c.head("c-1", 5);
    expect(asked.gap).toEqual(["c-1"]);
    expect(c.isResuming("c-1")).toBe(true);
    c.accept({ type: "event", kind: "message.created", conversation_id: "c-1", seq: 6 });
    expect(asked.delivered).toEqual([]);
    // A second head while the resume is under way asks nothing more.
    c.head("c-1", 6);
    expect(asked.gap).toEqual(["c-1"]);
  });

  it("does nothing for a conversation at or past the head", () => {
    const { c, asked } = catchup();
    c.join("c-1", 5);
    c.head("c-1", 5);
    c.head("c-1", 2);
    expect([asked.gap, asked.unknown, c.isResuming("c-1")]).toEqual([[], [], false]);
  });

  it("asks where we joined a conversation we have no position for (we were added while it could not hear)", () => {
    const { c, asked } = catchup();
    c.head("c-new", 1);
    expect([asked.unknown, asked.gap]).toEqual([["c-new"], []]);
    expect(c.isResuming("c-new")).toBe(true);
  });
});

describe("Catchup: a resume's replay", () => {
  const ev = (seq: number): ConversationEvent => ({
    type: "event",
    kind: "message.created",
    conversation_id: "c-1",
    seq,
  });

  it("delivers each replayed change as it comes, and holds a live one until the replay has passed it", () => {
    const { c, asked } = catchup();
    c.join("c-1", 2);
    c.asking("c-1");
    c.accept(ev(3), true);
    // Out at once, and the position with it: a reconnect now resumes from 3.
    expect(asked.delivered.map((e) => [e.seq, e.replayed])).toEqual([[3, true]]);
    expect(c.positions.get("c-1")).toBe(3);
    // Live, ahead of the replay: held.
    c.accept(ev(6));
    c.accept(ev(4), true);
    expect(asked.delivered.map((e) => e.seq)).toEqual([3, 4]);
    // The replay passes it (5 was superseded by a later version, 7): the live one goes out in its place.
    c.accept(ev(7), true);
    // A live copy of a change already replayed is dropped.
    c.accept(ev(4));
    c.finish("c-1", 7);
    expect(asked.delivered.map((e) => [e.seq, e.replayed])).toEqual([
      [3, true],
      [4, true],
      [6, true],
      [7, true],
    ]);
  });

  it("keeps the position reached when the socket goes partway", () => {
    const { c, asked } = catchup();
    c.join("c-1", 2);
    c.asking("c-1");
    c.accept(ev(3), true);
    c.accept(ev(9));
    c.abandon();
    expect(c.begin("c-1")).toBe(3);
    expect(asked.delivered.map((e) => e.seq)).toEqual([3]);
  });

  it("holds what looks replayed before the resume is asked for", () => {
    const { c, asked } = catchup();
    c.join("c-1", 2);
    c.begin("c-1");
    c.accept(ev(3), true);
    expect(asked.delivered).toEqual([]);
  });
});

describe("Catchup: added to a channel as a reader", () => {
  const added = (joined: number): ConversationEvent => ({
    type: "event",
    kind: "participant.added",
    conversation_id: "c-1",
    seq: 0,
    user_id: "u-me",
    role: "member",
    joined_seq: joined,
  });
  const post = (seq: number): ConversationEvent => ({
    type: "event",
    kind: "message.created",
    conversation_id: "c-1",
    seq,
  });

  it("starts after the event's joined_seq (it takes no seq of its own), and delivers the next change at once", () => {
    const { c, asked } = catchup();
    c.accept(added(7));
    expect(c.positions.get("c-1")).toBe(7);
    c.accept(post(8));
    expect(asked.delivered.map((e) => [e.kind, e.seq])).toEqual([
      ["participant.added", 0],
      ["message.created", 8],
    ]);
    expect([asked.gap, asked.unknown, c.positions.get("c-1")]).toEqual([[], [], 8]);
  });

  it("resumes from joined_seq when a change came first, and keeps a position it knew already", () => {
    const { c, asked } = catchup();
    // A post made at the moment of the add reached the socket before the add's word.
    c.accept(post(9));
    expect(asked.unknown).toEqual(["c-1"]);
    c.accept(added(7));
    // The resume then asked for starts where the reader's part starts, and the post waits for it.
    expect(c.begin("c-1")).toBe(7);
    expect(asked.delivered.map((e) => e.kind)).toEqual(["participant.added"]);
    // Another word of the same add later changes nothing.
    c.finish("c-1", 9);
    c.accept(added(3));
    expect(c.positions.get("c-1")).toBe(9);
  });
});
