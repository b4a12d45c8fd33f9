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
