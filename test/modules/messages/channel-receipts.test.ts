// A channel message's receipts over HTTP: counts for the whole channel to anyone in it, who has it a page
// at a time to its owners and admins only, a reader their own entry alone; never every member read for
// it. Dms and groups answer as before.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ParticipantRecord } from "../../../src/store/types.ts";
import { Rng } from "../../fuzz.ts";
import {
  BAD_MEMBER_PAGE_QUERIES,
  bigChannel,
  call,
  group,
  type Harness,
  harness,
  signup,
  storeReader,
} from "../../helpers.ts";
import { member, receiptCountsOf } from "../../store/conversations-contract.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User; // the channel's owner, who sends the first message
let bob: User; // its admin, who sends the second
let carol: User; // a reader who reads the first over REST
let dave: User; // a reader who fetches it (delivered, not read)
let eve: User; // added after the first message
let channel: string;
const READERS = 3000;
/** Put in through the store after the first message, at the log's last seq then (as the API adds them). */
const LATE = 25;
let first: { id: string; seq: number };
let second: { id: string; seq: number };
/** Conversations whose every member the app asked the store for. */
const readWhole: string[] = [];
/** Every member, as the store has them, read by the test itself (not counted in readWhole). */
let allMembers: (id: string) => Promise<ParticipantRecord[]>;

type Receipt = { user_id: string; delivered_at: string | null; read_at: string | null };

const send = async (user: User, conversation: string, content: string) => {
  const res = await call(h.app, "POST", `/api/conversations/${conversation}/messages`, {
    token: user.token,
    body: { content },
  });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, seq: res.body.seq as number };
};
const receipts = (user: User, messageId: string, query = "") =>
  call(h.app, "GET", `/api/messages/${messageId}/receipts${query ? `?${query}` : ""}`, { token: user.token });
const lastSeq = async () => (await h.deps.store.conversations.byId(channel))?.last_seq as number;

beforeAll(async () => {
  h = await harness();
  [alice, bob, carol, dave, eve] = await Promise.all(Array.from({ length: 5 }, () => signup(h.app)));
  channel = await bigChannel(h, alice, [bob, carol, dave], { admins: 1, readers: READERS });
  first = await send(alice, channel, "to everyone");
  const store = h.deps.store.conversations;
  // The readers' positions, every way they can stand with the first message: nothing; behind it;
  // delivered up to it or past it; read up to it or past it; read behind it but delivered past it.
  h.clock.advance(1000);
  const rng = new Rng(20261208);
  for (let i = 0; i < READERS; i++) {
    const reader = storeReader(i);
    switch (rng.int(7)) {
      case 1:
        await store.markDelivered(channel, reader, first.seq - 1, h.clock.now());
        break;
      case 2:
        await store.markDelivered(channel, reader, first.seq, h.clock.now());
        break;
      case 3:
        await store.markRead(channel, reader, first.seq, h.clock.now());
        break;
      case 4:
        await store.markRead(channel, reader, first.seq - 1, h.clock.now());
        await store.markDelivered(channel, reader, first.seq, h.clock.now());
        break;
      case 5:
        await store.markDelivered(channel, reader, first.seq + 5, h.clock.now());
        break;
      case 6:
        await store.markRead(channel, reader, first.seq + 5, h.clock.now());
        break;
    }
  }
  const read = await call(h.app, "POST", `/api/conversations/${channel}/read`, {
    token: carol.token,
    body: { seq: first.seq },
  });
  expect(read.body).toEqual({ last_read_seq: first.seq });
  expect(
    (await call(h.app, "GET", `/api/conversations/${channel}/messages`, { token: dave.token })).status,
  ).toBe(200);
  // After it: eve over HTTP, and more readers through the store, at the log's last seq as the API adds.
  const added = await call(h.app, "POST", `/api/conversations/${channel}/participants`, {
    token: alice.token,
    body: { user_id: eve.id },
  });
  expect(added.status).toBe(201);
  for (let i = READERS; i < READERS + LATE; i++) {
    const at = await lastSeq();
    await store.addParticipant(
      member(channel, storeReader(i), { joined_seq: at, delivered_seq: at, last_read_seq: at }),
    );
  }
  second = await send(bob, channel, "from the admin");
  await store.markRead(channel, storeReader(READERS + 1), second.seq, h.clock.now());
  await store.markDelivered(channel, storeReader(1), second.seq, h.clock.now());
  allMembers = store.participants.bind(store);
  store.participants = (id: string) => {
    readWhole.push(id);
    return allMembers(id);
  };
});
afterAll(() => h.close());

describe("a channel message's counts", () => {
  it("count the whole channel exactly, and the same for its owner, an admin and a reader", async () => {
    const members = await allMembers(channel);
    expect(members).toHaveLength(READERS + 5 + LATE);
    for (const message of [first, second]) {
      const sender = message === first ? alice.id : bob.id;
      const expected = receiptCountsOf(members, message.seq, sender);
      for (const user of [alice, bob, carol, eve]) {
        const res = await receipts(user, message.id);
        expect(res.status).toBe(200);
        expect(res.body.counts).toEqual(expected);
      }
    }
    // The first went to the readers, the admin and the two other readers, not to its sender nor to the
    // members added after it; the second to all of them but its sender.
    const first_ = receiptCountsOf(members, first.seq, alice.id);
    expect(first_.recipients).toBe(READERS + 3);
    expect(receiptCountsOf(members, second.seq, bob.id).recipients).toBe(READERS + 3 + 1 + LATE);
    // Every way of standing with it was drawn: some of each.
    expect(first_.read).toBeGreaterThan(READERS / 7);
    expect(first_.delivered).toBeGreaterThan(first_.read + READERS / 7);
    expect(first_.recipients).toBeGreaterThan(first_.delivered + READERS / 7);
    expect(readWhole).not.toContain(channel);
  });
});

describe("who has a channel message", () => {
  it("pages every member it was sent to once to its owner, by user id: not its sender, nor those added after it", async () => {
    const members = await allMembers(channel);
    const byId = new Map(members.map((p) => [p.user_id, p]));
    const expected = members
      .filter((p) => p.user_id !== alice.id && p.joined_seq < first.seq)
      .map((p) => p.user_id)
      .sort();
    const seen: Receipt[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await receipts(alice, first.id, `limit=200${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(200);
      expect(res.body.counts.recipients).toBe(expected.length);
      seen.push(...res.body.items);
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    expect(seen.map((r) => r.user_id)).toEqual(expected);
    // Each as the store has them: delivered (read) at the time it moved past the message, if it has.
    for (const r of seen) {
      const p = byId.get(r.user_id) as ParticipantRecord;
      expect(r.delivered_at !== null).toBe(p.delivered_seq >= first.seq);
      expect(r.read_at !== null).toBe(p.last_read_seq >= first.seq);
    }
    expect(seen.filter((r) => r.read_at !== null)).toHaveLength(
      receiptCountsOf(members, first.seq, alice.id).read,
    );
    expect(pages).toBe(Math.ceil(members.length / 200));
    expect(readWhole).not.toContain(channel);
  });

  it("answers an admin from the first 50 members by default, and counts the owner among those the admin's message went to", async () => {
    const page = await receipts(bob, second.id);
    expect(page.status).toBe(200);
    // The first 50 members by user id are the five real users (their ids start with a digit) and 45
    // readers: the admin, its sender, is left out of them.
    expect(page.body.items).toHaveLength(49);
    expect(page.body.items.map((r: Receipt) => r.user_id)).not.toContain(bob.id);
    expect(page.body.next_cursor).toEqual(expect.any(String));
    for (const r of page.body.items as Receipt[]) {
      expect(Object.keys(r)).toEqual(["user_id", "delivered_at", "read_at"]);
      for (const at of [r.delivered_at, r.read_at])
        if (at !== null) expect(Date.parse(at)).toBeGreaterThan(0);
    }
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await receipts(bob, second.id, `limit=200${cursor ? `&cursor=${cursor}` : ""}`);
      all.push(...res.body.items.map((r: Receipt) => r.user_id));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(all).toContain(alice.id);
    expect(all).toContain(eve.id);
    expect(all).not.toContain(bob.id);
    expect(all).toHaveLength(READERS + 4 + LATE);
  });

  it("gives a reader their own entry alone, with the counts", async () => {
    const mine = await receipts(carol, first.id, "limit=200");
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual({
      items: [{ user_id: carol.id, delivered_at: expect.any(String), read_at: expect.any(String) }],
      next_cursor: null,
      counts: receiptCountsOf(await allMembers(channel), first.seq, alice.id),
    });
    const fetched = await receipts(dave, first.id);
    expect(fetched.body.items).toEqual([
      { user_id: dave.id, delivered_at: expect.any(String), read_at: null },
    ]);
    // Added after it: it was not sent to them; the counts all the same.
    const late = await receipts(eve, first.id);
    expect([late.body.items, late.body.next_cursor, late.body.counts.recipients]).toEqual([
      [],
      null,
      READERS + 3,
    ]);
    expect((await receipts(eve, second.id)).body.items).toEqual([
      { user_id: eve.id, delivered_at: null, read_at: null },
    ]);
    expect(readWhole).not.toContain(channel);
  });

  it("answers 404 to someone not in the channel, as for any message", async () => {
    const outsider = await receipts(await signup(h.app), first.id);
    expect([outsider.status, outsider.body.error.code]).toEqual([404, "not_found"]);
  });

  it.each(BAD_MEMBER_PAGE_QUERIES)(
    "refuses %s with 422 validation_failed naming %s",
    async (query, field) => {
      for (const user of [alice, carol]) {
        const res = await receipts(user, first.id, query);
        expect([res.status, res.body.error.code, res.body.error.field]).toEqual([
          422,
          "validation_failed",
          field,
        ]);
      }
    },
  );
});

describe("a dm's or group's receipts", () => {
  it("stay every member the message was sent to, with nothing else in the answer", async () => {
    const room = await group(h.app, alice, [bob, carol]);
    const sent = await send(alice, room, "hello group");
    h.clock.advance(1000);
    await call(h.app, "POST", `/api/conversations/${room}/read`, {
      token: bob.token,
      body: { seq: sent.seq },
    });
    await call(h.app, "GET", `/api/conversations/${room}/messages`, { token: carol.token });
    await call(h.app, "POST", `/api/conversations/${room}/participants`, {
      token: alice.token,
      body: { user_id: dave.id },
    });
    const at = new Date(h.clock.now()).toISOString();
    const expected = {
      items: [
        { user_id: bob.id, delivered_at: at, read_at: at },
        { user_id: carol.id, delivered_at: at, read_at: null },
      ].sort((a, b) => (a.user_id < b.user_id ? -1 : 1)),
    };
    for (const user of [alice, carol, dave]) {
      const res = await receipts(user, sent.id, "limit=1");
      expect(res.status).toBe(200);
      expect({ items: [...res.body.items].sort((a, b) => (a.user_id < b.user_id ? -1 : 1)) }).toEqual(
        expected,
      );
      expect(Object.keys(res.body)).toEqual(["items"]);
    }

    const dm = await call(h.app, "POST", "/api/conversations", {
      token: eve.token,
      body: { conversation_type: "dm", participant_ids: [dave.id] },
    });
    const hi = await send(eve, dm.body.id, "hi");
    const res = await receipts(dave, hi.id);
    expect(res.body).toEqual({ items: [{ user_id: dave.id, delivered_at: null, read_at: null }] });
  });
});
