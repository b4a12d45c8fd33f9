// The caps written into the REST schemas (list sizes, page sizes, text lengths): at the cap a request is
// taken, one past it is 422 validation_failed naming the cap. And search's cap on terms, which drops the
// terms past the 16th rather than refusing the query.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { runCli } from "../../src/cli.ts";
import { call, group, type Harness, harness, signup } from "../helpers.ts";

let h: Harness;
let alice: Awaited<ReturnType<typeof signup>>;
let bob: Awaited<ReturnType<typeof signup>>;
let conversation: string;
beforeAll(async () => {
  h = await harness();
  [alice, bob] = [await signup(h.app), await signup(h.app)];
  // Announcements are sent by admins.
  expect(await runCli(["admin", "grant", alice.username], h.config, () => {})).toBe(0);
  conversation = await group(h.app, alice, [bob]);
});
afterAll(() => h.close());

const attachments = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    file_id: `f-${i}`,
    file_name: `photo-${i}.png`,
    file_size: 1,
    mime_type: "image/png",
  }));

type Case = [method: string, path: (n: number) => string, body: ((n: number) => unknown) | undefined];
/**
 * `field`: what the error names, null for query values: Elysia reports one out of range without its path,
 * so the error names "body" (a fault of the error's field, not of the cap, left unasserted here so that
 * fixing it breaks nothing); the message names the bound either way.
 */
const caps: [name: string, cap: number, field: string | null, Case][] = [
  [
    "participant_ids",
    1000,
    "participant_ids",
    // One id repeated: members are counted after duplicates go, the list before.
    [
      "POST",
      () => "/api/conversations",
      (n) => ({ conversation_type: "group", participant_ids: Array(n).fill(bob.id) }),
    ],
  ],
  [
    "attachments",
    20,
    "attachments",
    ["POST", () => `/api/conversations/${conversation}/messages`, (n) => ({ attachments: attachments(n) })],
  ],
  [
    "events limit",
    1000,
    null,
    ["GET", (n) => `/api/conversations/${conversation}/events?limit=${n}`, undefined],
  ],
  [
    "messages limit",
    200,
    null,
    ["GET", (n) => `/api/conversations/${conversation}/messages?limit=${n}`, undefined],
  ],
  [
    "search limit",
    100,
    null,
    ["GET", (n) => `/api/conversations/${conversation}/messages/search?q=hello&limit=${n}`, undefined],
  ],
  ["conversations limit", 100, null, ["GET", (n) => `/api/conversations?limit=${n}`, undefined]],
  ["users limit", 100, null, ["GET", (n) => `/api/users?limit=${n}`, undefined]],
  [
    "announcement text",
    4000,
    "text",
    ["POST", () => "/api/announcements", (n) => ({ channel: "news", text: "x".repeat(n) })],
  ],
];

it.each(caps)(
  "takes %s at %d and refuses one more with 422",
  async (_name, cap, field, [method, path, body]) => {
    const at = await call(h.app, method, path(cap), { token: alice.token, body: body?.(cap) });
    expect(at.status).toBeLessThan(300);
    const over = await call(h.app, method, path(cap + 1), { token: alice.token, body: body?.(cap + 1) });
    expect([over.status, over.body.error?.code]).toEqual([422, "validation_failed"]);
    if (field !== null) expect(over.body.error.field).toBe(field);
    // TypeBox's words for a list or a number; a limit in characters says so (lib/text.ts).
    expect(over.body.error.message).toMatch(new RegExp(`(less or equal to|1 to) ${cap}\\b`));
  },
);

it("searches with the first 16 terms of a query and drops the rest (no refusal)", async () => {
  const words = Array.from({ length: 17 }, (_, i) => `term${String.fromCharCode(97 + i)}`);
  const sixteen = words.slice(0, 16).join(" ");
  const sent = await call(h.app, "POST", `/api/conversations/${conversation}/messages`, {
    token: alice.token,
    body: { content: sixteen },
  });
  expect(sent.status).toBe(201);
  const search = async (q: string) => {
    const res = await call(
      h.app,
      "GET",
      `/api/conversations/${conversation}/messages/search?q=${encodeURIComponent(q)}`,
      {
        token: alice.token,
      },
    );
    expect(res.status).toBe(200);
    return res.body.items.map((m: { id: string }) => m.id);
  };
  // Every term must match: a 17th the message lacks would exclude it, had it been kept.
  expect(await search(`${sixteen} absentword`)).toEqual([sent.body.id]);
  // The terms kept are the first 16: one the message lacks among them excludes it.
  expect(await search(`absentword ${sixteen}`)).toEqual([]);
});
