// Free text other than message content: a lone surrogate (which storage would keep as U+FFFD, so the
// value read back is not the one accepted) or a NUL is refused with 422, field by field.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { runCli } from "../../src/cli.ts";
import { call, type Harness, harness, newAccount, signup } from "../helpers.ts";

let h: Harness;
let user: Awaited<ReturnType<typeof signup>>;
let peer: Awaited<ReturnType<typeof signup>>;
let conversationId: string;
beforeAll(async () => {
  h = await harness();
  [user, peer] = [await signup(h.app), await signup(h.app)];
  await runCli(["admin", "grant", user.username], h.config, () => {});
  const conv = await call(h.app, "POST", "/api/conversations", {
    token: user.token,
    body: { conversation_type: "group", participant_ids: [peer.id], name: "ok" },
  });
  conversationId = conv.body.id;
});
afterAll(() => h.close());

type Request = [
  method: string,
  path: () => string,
  body: (text: string) => Record<string, unknown>,
  /** Well-formed text the field takes (an emoji is a surrogate pair). */
  good?: string,
];
const attachment = (file_name: string, mime_type = "image/png") => ({
  attachments: [{ file_id: "f-1", file_name, file_size: 1, mime_type }],
});
const fields: [field: string, Request][] = [
  ["display_name", ["POST", () => "/api/auth/signup", (bad) => ({ ...newAccount(), display_name: bad })]],
  ["device_name", ["POST", () => "/api/auth/signup", (bad) => ({ ...newAccount(), device_name: bad })]],
  ["display_name", ["PUT", () => `/api/users/${user.id}`, (bad) => ({ display_name: bad })]],
  [
    "name",
    [
      "POST",
      () => "/api/conversations",
      (bad) => ({ conversation_type: "group", participant_ids: [], name: bad }),
    ],
  ],
  [
    "topic",
    [
      "POST",
      () => "/api/conversations",
      (bad) => ({ conversation_type: "group", participant_ids: [], topic: bad }),
    ],
  ],
  ["name", ["PUT", () => `/api/conversations/${conversationId}`, (bad) => ({ name: bad })]],
  ["topic", ["PUT", () => `/api/conversations/${conversationId}`, (bad) => ({ topic: bad })]],
  [
    "client_msg_id",
    [
      "POST",
      () => `/api/conversations/${conversationId}/messages`,
      (bad) => ({ content: "x", client_msg_id: bad }),
    ],
  ],
  [
    "attachments.0.file_name",
    ["POST", () => `/api/conversations/${conversationId}/messages`, (bad) => attachment(bad)],
  ],
  [
    "attachments.0.mime_type",
    [
      "POST",
      () => `/api/conversations/${conversationId}/messages`,
      (bad) => attachment("a.png", bad),
      "image/png",
    ],
  ],
  ["text", ["POST", () => "/api/announcements", (bad) => ({ channel: "news", text: bad })]],
];

it.each(fields)(
  "refuses a lone surrogate or a NUL in %s with 422",
  async (field, [method, path, body, good]) => {
    for (const bad of ["x\ud800y", "x\udc00", "x\u0000y"]) {
      const res = await call(h.app, method, path(), { token: user.token, body: body(bad) });
      expect({ bad, status: res.status, code: res.body.error?.code, field: res.body.error?.field }).toEqual({
        bad,
        status: 422,
        code: "validation_failed",
        field,
      });
    }
    // The same field with well-formed text is taken.
    const res = await call(h.app, method, path(), { token: user.token, body: body(good ?? "ok 👍") });
    expect(res.status).toBeLessThan(300);
  },
);
