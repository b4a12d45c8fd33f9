// MAX_PAGE_BYTES: a history or events page ends before the message that would take it past the bound
// (one message at least), and says there is more; paging on gets every message once, in order.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup } from "../../helpers.ts";

const BOUND = 64 * 1024;
let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
let id: string;
let sent: number[];

beforeAll(async () => {
  h = await harness({ MAX_PAGE_BYTES: String(BOUND) });
  [alice, bob] = [await signup(h.app), await signup(h.app)];
  id = await group(h.app, alice, [bob]);
  sent = [];
  // Ten of ~16 KB: a page of them holds three.
  for (let i = 0; i < 10; i++) {
    const res = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: `${i} needle ${"é".repeat(8_000)}` },
    });
    expect(res.status).toBe(201);
    sent.push(res.body.seq);
  }
});
afterAll(() => h.close());

type Page = { items: { seq: number; version_seq: number }[]; has_more: boolean };
const get = async (path: string): Promise<Page> => {
  const res = await call(h.app, "GET", `/api/conversations/${id}/${path}`, { token: bob.token });
  expect(res.status).toBe(200);
  // Held to the bound, give or take the estimate of a message's keys and times.
  expect(Buffer.byteLength(JSON.stringify(res.body))).toBeLessThan(BOUND + 16_500);
  return res.body;
};

it("ends an events page at the bound, then pages on to every change once", async () => {
  const seen: number[] = [];
  let after = 0;
  for (;;) {
    const page = await get(`events?after=${after}&limit=1000`);
    expect(page.items.length).toBeGreaterThan(0);
    expect(page.items.length).toBeLessThanOrEqual(3);
    seen.push(...page.items.map((m) => m.version_seq));
    if (!page.has_more) break;
    after = page.items.at(-1)?.version_seq as number;
  }
  expect(seen.filter((s) => sent.includes(s))).toEqual(sent);
  expect(new Set(seen).size).toBe(seen.length);
});

it("ends a history page going back from the end at the bound, keeping the newest, then pages back to the start", async () => {
  const seen: number[] = [];
  let page = await get("messages?limit=200");
  expect(page.items.at(-1)?.seq).toBe(sent.at(-1) as number);
  for (;;) {
    expect(page.items.length).toBeGreaterThan(0);
    expect(page.items.length).toBeLessThanOrEqual(3);
    seen.unshift(...page.items.map((m) => m.seq));
    if (!page.has_more) break;
    page = await get(`messages?before=${page.items[0]?.seq}&limit=200`);
  }
  expect(seen.filter((s) => sent.includes(s))).toEqual(sent);
});

it("ends a history page going forward at the bound, keeping the oldest, then pages on to the end", async () => {
  const seen: number[] = [];
  let page = await get("messages?after=0&limit=200");
  for (;;) {
    expect(page.items.length).toBeGreaterThan(0);
    expect(page.items.length).toBeLessThanOrEqual(3);
    seen.push(...page.items.map((m) => m.seq));
    if (!page.has_more) break;
    page = await get(`messages?after=${page.items.at(-1)?.seq}&limit=200`);
  }
  expect(seen.filter((s) => sent.includes(s))).toEqual(sent);
});

it("holds a search's answer to the bound too, keeping the best matches", async () => {
  const res = await call(h.app, "GET", `/api/conversations/${id}/messages/search?q=needle&limit=100`, {
    token: bob.token,
  });
  expect(res.status).toBe(200);
  expect(res.body.items.length).toBeGreaterThan(0);
  expect(res.body.items.length).toBeLessThanOrEqual(3);
  expect(Buffer.byteLength(JSON.stringify(res.body))).toBeLessThan(BOUND + 16_500);
});
