// Receipts as the members see them live: every way a message counts as delivered tells the others.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { RECEIPT_WINDOW_MS } from "../../../src/modules/messages/receipt-batch.ts";
import type { ReceiptPosition } from "../../../src/realtime/frames.ts";
import type { ConversationEvent } from "../../../src/realtime/hub.ts";
import { call, group, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(() => h.close());

/** The receipts published in the conversation while `work` runs (and the window that gathers them after). */
async function receiptsDuring(conversationId: string, work: () => Promise<unknown>) {
  const events: ConversationEvent[] = [];
  const off = h.deps.hub.subscribe(conversationId, (e) => {
    if (e.kind === "receipts.moved") events.push(e);
  });
  try {
    await work();
    await Bun.sleep(2 * RECEIPT_WINDOW_MS);
  } finally {
    off();
  }
  return events.flatMap((e) =>
    (e.members as ReceiptPosition[]).flatMap(({ user_id, delivered, read }) => [
      ...(delivered > 0 ? [{ kind: "receipt.delivered", user_id, delivered_seq: delivered }] : []),
      ...(read > 0 ? [{ kind: "receipt.read", user_id, delivered_seq: undefined }] : []),
    ]),
  );
}

it.each(["messages", "events"])(
  "tells the members when fetching over REST (/%s) delivers messages, once",
  async (route) => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "are you there?" },
    });
    const fetch = () => call(h.app, "GET", `/api/conversations/${id}/${route}`, { token: bob.token });
    expect(await receiptsDuring(id, fetch)).toEqual([
      { kind: "receipt.delivered", user_id: bob.id, delivered_seq: sent.body.seq },
    ]);
    // The message now shows delivered to its sender, as the receipt said.
    const mine = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    expect(mine.body.items.find((m: { id: string }) => m.id === sent.body.id).status).toBe("delivered");
    // (That fetch delivers to alice what she had not fetched: told after its window, before the next.)
    await Bun.sleep(2 * RECEIPT_WINDOW_MS);
    // Fetched again: nothing moved, nothing to tell.
    expect(await receiptsDuring(id, fetch)).toEqual([]);
  },
);

it("tells the members a read or an acknowledgement that moved, and nothing for one that did not", async () => {
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  const id = await group(h.app, alice, [bob]);
  const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
    token: alice.token,
    body: { content: "read me" },
  });
  const read = () =>
    call(h.app, "POST", `/api/conversations/${id}/read`, { token: bob.token, body: { seq: sent.body.seq } });
  const kinds = async (work: () => Promise<unknown>) =>
    (await receiptsDuring(id, work)).map((r) => `${r.kind}:${r.user_id === bob.id}`);
  const ack = () => h.deps.messages.acknowledge(id, bob.id, sent.body.seq);
  expect(await kinds(ack)).toEqual(["receipt.delivered:true"]);
  expect(await kinds(ack)).toEqual([]);
  expect(await kinds(read)).toEqual(["receipt.read:true"]);
  expect(await kinds(read)).toEqual([]);
});

it("tells a group the receipts of a moment in one event: each member's latest positions, not one event per ack", async () => {
  const [alice, ...others] = await Promise.all(Array.from({ length: 5 }, () => signup(h.app)));
  const id = await group(h.app, alice, others);
  const seqs: number[] = [];
  for (const content of ["one", "two"]) {
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content },
    });
    seqs.push(sent.body.seq);
  }
  const [first, second] = seqs as [number, number];
  const events: ConversationEvent[] = [];
  const off = h.deps.hub.subscribe(id, (e) => {
    if (e.kind.startsWith("receipt")) events.push(e);
  });
  try {
    // Four members ack, one of them twice and one reads too, within one window.
    for (const member of others) await h.deps.messages.acknowledge(id, member.id, first);
    await h.deps.messages.acknowledge(id, others[0]?.id as string, second);
    await h.deps.messages.markRead(id, others[1]?.id as string, second);
    await Bun.sleep(2 * RECEIPT_WINDOW_MS);
  } finally {
    off();
  }
  expect(events.map((e) => e.kind)).toEqual(["receipts.moved"]);
  const members = [...((events[0]?.members ?? []) as ReceiptPosition[])].sort((a, b) =>
    a.user_id.localeCompare(b.user_id),
  );
  const expected = others
    .map((m, i) => ({ user_id: m.id, delivered: i === 0 ? second : first, read: i === 1 ? second : 0 }))
    .sort((a, b) => a.user_id.localeCompare(b.user_id));
  expect(members).toEqual(expected);
});

it("answers a receipt's times as when the member's position last moved to or past the message, as README says", async () => {
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  const id = await group(h.app, alice, [bob]);
  const send = async (content: string) =>
    (
      await call(h.app, "POST", `/api/conversations/${id}/messages`, {
        token: alice.token,
        body: { content },
      })
    ).body;
  const read = (seq: number) =>
    call(h.app, "POST", `/api/conversations/${id}/read`, { token: bob.token, body: { seq } });
  const receipt = async (messageId: string) =>
    (await call(h.app, "GET", `/api/messages/${messageId}/receipts`, { token: alice.token })).body.items[0];
  const first = await send("first");
  await read(first.seq);
  const firstReadAt = new Date(h.clock.now()).toISOString();
  expect((await receipt(first.id)).read_at).toBe(firstReadAt);
  h.clock.advance(60_000);
  const second = await send("second");
  expect(await receipt(second.id)).toMatchObject({ read_at: null });
  await read(second.seq);
  // One time per member and kind is kept, not one per message: the first's moves with the second's read.
  const later = new Date(h.clock.now()).toISOString();
  expect((await receipt(first.id)).read_at).toBe(later);
  expect((await receipt(second.id)).read_at).toBe(later);
});
