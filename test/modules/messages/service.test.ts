// The messages service in races: deletes against edits and reactions on their way, and against a store whose
// change() retries, as the MongoDB adapter does when it loses a compare-and-set (the change function may run
// more than once and only the last run counts).

import { afterAll, beforeAll, expect, it } from "bun:test";
import type { ConversationEvent } from "../../../src/realtime/hub.ts";
import type { MessageChange } from "../../../src/store/types.ts";
import { call, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(() => h.close());

it("publishes no delete when the delete lost its race to another delete", async () => {
  const alice = await signup(h.app);
  const bob = await signup(h.app);
  const conv = await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  const sent = await call(h.app, "POST", `/api/conversations/${conv.body.id}/messages`, {
    token: alice.token,
    body: { content: "contested" },
  });
  const messages = h.deps.store.messages;
  const realChange = messages.change.bind(messages);
  // First attempt sees the live message; meanwhile another delete lands; the retry sees the tombstone.
  messages.change = async (id: string, input: MessageChange) => {
    const before = await messages.byId(id);
    if (before && typeof input === "function") input(before);
    await realChange(id, { content: "", deleted: true, updated_at: h.clock.now() });
    return realChange(id, input);
  };
  const events: ConversationEvent[] = [];
  const off = h.deps.hub.subscribe(conv.body.id, (e) => events.push(e));
  try {
    const res = await call(h.app, "DELETE", `/api/messages/${sent.body.id}`, { token: alice.token });
    expect(res.status).toBe(204);
  } finally {
    off();
    messages.change = realChange;
  }
  expect(events.filter((e) => e.kind === "message.deleted")).toHaveLength(0);
});

it("never brings back a message deleted while an edit or a reaction of it was on its way", async () => {
  const alice = await signup(h.app);
  const bob = await signup(h.app);
  const conv = await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  const id = conv.body.id as string;
  const sent = await Promise.all(
    Array.from(
      { length: 10 },
      async (_, i) =>
        (
          await call(h.app, "POST", `/api/conversations/${id}/messages`, {
            token: alice.token,
            body: { content: `secret ${i}` },
          })
        ).body,
    ),
  );
  // Each message's delete and a late edit and reaction, at once: whichever lands first, the delete wins.
  const answers = await Promise.all(
    sent.flatMap((m) => [
      call(h.app, "DELETE", `/api/messages/${m.id}`, { token: alice.token }),
      call(h.app, "PUT", `/api/messages/${m.id}`, { token: alice.token, body: { content: "rewritten" } }),
      call(h.app, "POST", `/api/messages/${m.id}/reactions`, { token: bob.token, body: { emoji: "👀" } }),
    ]),
  );
  for (const res of answers) expect([200, 201, 204, 409]).toContain(res.status);
  const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
  for (const m of page.body.items)
    expect(m).toMatchObject({ deleted: true, content: "", reactions: [], attachments: [] });
  // Nor does the catch-up give any version of them with content after their delete.
  const events = await call(h.app, "GET", `/api/conversations/${id}/events?after=10`, { token: bob.token });
  for (const m of events.body.items) expect([m.deleted, m.content]).toEqual([true, ""]);
});

it("answers an events page's last_seq at least as far as the page goes, when a change lands while it is read", async () => {
  const alice = await signup(h.app);
  const bob = await signup(h.app);
  const conv = await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  const id = conv.body.id as string;
  const messages = h.deps.store.messages;
  const realEvents = messages.events.bind(messages);
  // Between the conversation's read and the page's, a message is sent.
  messages.events = async (conversationId: string, after: number, limit: number) => {
    messages.events = realEvents;
    await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "meanwhile" },
    });
    return realEvents(conversationId, after, limit);
  };
  try {
    const page = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: bob.token });
    const seqs = page.body.items.map((m: { version_seq: number }) => m.version_seq);
    expect(seqs.length).toBeGreaterThan(0);
    expect(page.body.last_seq).toBeGreaterThanOrEqual(Math.max(...seqs));
  } finally {
    messages.events = realEvents;
  }
});
