// Limits in characters count Unicode code points, over REST and over the socket alike: an emoji (two
// UTF-16 units) is one character, so a field at its limit in emoji is taken and one more is 422
// validation_failed naming the field (a socket's frame: error validation_failed).

import { afterAll, beforeAll, expect, it } from "bun:test";
import { runCli } from "../../src/cli.ts";
import { characters } from "../../src/lib/text.ts";
import { call, group, type Harness, harness, newAccount, signup } from "../helpers.ts";
import { connect } from "../realtime/ws-client.ts";

const EMOJI = "😀";

let h: Harness;
let port: number;
let alice: Awaited<ReturnType<typeof signup>>;
let bob: Awaited<ReturnType<typeof signup>>;
let conversation: string;
beforeAll(async () => {
  h = await harness({ RATE_LIMIT_PER_MINUTE: "100000" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  port = h.app.server?.port ?? 0;
  [alice, bob] = [await signup(h.app), await signup(h.app)];
  expect(await runCli(["admin", "grant", alice.username], h.config, () => {})).toBe(0);
  conversation = await group(h.app, alice, [bob]);
});
afterAll(async () => {
  await h.app.stop(true);
  await h.close();
});

let n = 0;
/** `count` characters: emoji, after a short ASCII prefix that keeps values apart (client_msg_id). */
const emoji = (count: number) => {
  const prefix = String(++n % 10);
  return prefix + EMOJI.repeat(count - 1);
};

type Case = [method: string, path: (text: string) => string, body: ((text: string) => unknown) | undefined];
const attachment = (file_name: string, mime_type = "image/png") => ({
  attachments: [{ file_id: "f-1", file_name, file_size: 1, mime_type }],
});
const limits: [field: string, limit: number, Case][] = [
  ["display_name", 100, ["POST", () => "/api/auth/signup", (t) => ({ ...newAccount(), display_name: t })]],
  ["device_name", 100, ["POST", () => "/api/auth/signup", (t) => ({ ...newAccount(), device_name: t })]],
  ["display_name", 100, ["PUT", () => `/api/users/${alice.id}`, (t) => ({ display_name: t })]],
  [
    "name",
    200,
    [
      "POST",
      () => "/api/conversations",
      (t) => ({ conversation_type: "group", participant_ids: [], name: t }),
    ],
  ],
  ["topic", 1000, ["PUT", () => `/api/conversations/${conversation}`, (t) => ({ topic: t })]],
  [
    "client_msg_id",
    64,
    [
      "POST",
      () => `/api/conversations/${conversation}/messages`,
      (t) => ({ content: "x", client_msg_id: t }),
    ],
  ],
  [
    "attachments.0.file_name",
    255,
    ["POST", () => `/api/conversations/${conversation}/messages`, (t) => attachment(t)],
  ],
  ["text", 4000, ["POST", () => "/api/announcements", (t) => ({ channel: "news", text: t })]],
  [
    "q",
    200,
    [
      "GET",
      (t) => `/api/conversations/${conversation}/messages/search?q=${encodeURIComponent(t)}`,
      undefined,
    ],
  ],
  ["q", 100, ["GET", (t) => `/api/users?q=${encodeURIComponent(t)}`, undefined]],
];

it.each(limits)(
  "takes %s of %d characters in emoji and refuses one more with 422",
  async (field, limit, [method, path, body]) => {
    const at = emoji(limit);
    expect([characters(at), at.length]).toEqual([limit, 2 * limit - 1]);
    const taken = await call(h.app, method, path(at), { token: alice.token, body: body?.(at) });
    expect(taken.status).toBeLessThan(300);
    const over = emoji(limit + 1);
    const refused = await call(h.app, method, path(over), { token: alice.token, body: body?.(over) });
    expect([refused.status, refused.body.error?.code, refused.body.error?.field]).toEqual([
      422,
      "validation_failed",
      field,
    ]);
    expect(refused.body.error.message).toContain(`${limit} characters`);
  },
);

it("counts characters the same way in a socket's message frame", async () => {
  const ws = await connect(`ws://127.0.0.1:${port}/ws/${alice.id}/${alice.session_id}`, [
    "parley.msgpack",
    `bearer.${alice.token}`,
  ]);
  try {
    await ws.next((f) => f.type === "hello");
    const frame = (ref: string, client_msg_id: string, file_name = "a.png") => ({
      type: "message",
      ref,
      conversation_id: conversation,
      client_msg_id,
      content: "hi",
      ...attachment(file_name),
    });
    ws.send(frame("at", emoji(64), emoji(255)));
    expect(await ws.next((f) => f.ref === "at")).toMatchObject({ type: "ack" });
    ws.send(frame("over-id", emoji(65)));
    expect(await ws.next((f) => f.ref === "over-id")).toMatchObject({
      type: "error",
      code: "validation_failed",
      message: expect.stringMatching(/^client_msg_id: .*64 characters/),
    });
    ws.send(frame("over-name", emoji(64), emoji(256)));
    expect(await ws.next((f) => f.ref === "over-name")).toMatchObject({
      type: "error",
      code: "validation_failed",
      message: expect.stringMatching(/^attachments\.0\.file_name: .*255 characters/),
    });
  } finally {
    ws.close();
    await ws.closed;
  }
});

it("counts a surrogate pair as one character, and a lone surrogate as one", () => {
  expect(characters("")).toBe(0);
  expect(characters("abc")).toBe(3);
  expect(characters("a😀b")).toBe(3);
  expect(characters("😀😀")).toBe(2);
  expect(characters("\ud83d")).toBe(1);
  expect(characters("\ude00\ud83d")).toBe(2);
  expect(characters("x\ud83d")).toBe(2);
});
