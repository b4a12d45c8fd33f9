// The authorization matrix: every conversation and message route, walked by an outsider, a member, an
// admin and the owner. A conversation the caller is not in does not exist for them (404, never 403).

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let owner: User;
let admin: User;
let member: User;
let member2: User;
let outsider: User;
let newcomer: User;

beforeAll(async () => {
  h = await harness();
  [owner, admin, member, member2, outsider, newcomer] = await Promise.all(
    Array.from({ length: 6 }, () => signup(h.app)),
  );
});
afterAll(() => h.close());

type Role = "outsider" | "member" | "admin" | "owner";
const ROLES: Role[] = ["outsider", "member", "admin", "owner"];

interface Fixture {
  conversation: string;
  ownersMessage: string;
}

/** A fresh conversation per cell, so that no cell's change (a delete, a removal) leaks into another. */
async function fixture(type: "group" | "channel" = "group"): Promise<Fixture> {
  const res = await call(h.app, "POST", "/api/conversations", {
    token: owner.token,
    body: { conversation_type: type, participant_ids: [admin.id, member.id, member2.id] },
  });
  const conversation = res.body.id as string;
  await call(h.app, "PUT", `/api/conversations/${conversation}/participants/${admin.id}`, {
    token: owner.token,
    body: { role: "admin" },
  });
  const m = await call(h.app, "POST", `/api/conversations/${conversation}/messages`, {
    token: owner.token,
    body: { content: "hello world" },
  });
  return { conversation, ownersMessage: m.body.id };
}

interface Row {
  name: string;
  type?: "group" | "channel";
  request: (f: Fixture) => [method: string, path: string, body?: unknown];
  expect: [outsider: number, member: number, admin: number, owner: number];
}

const ROUTES: Row[] = [
  {
    name: "read a conversation",
    request: (f) => ["GET", `/api/conversations/${f.conversation}`],
    expect: [404, 200, 200, 200],
  },
  {
    name: "rename",
    request: (f) => ["PUT", `/api/conversations/${f.conversation}`, { name: "x" }],
    expect: [404, 403, 200, 200],
  },
  {
    name: "delete a group",
    request: (f) => ["DELETE", `/api/conversations/${f.conversation}`],
    expect: [404, 403, 403, 204],
  },
  {
    name: "add a participant",
    request: (f) => ["POST", `/api/conversations/${f.conversation}/participants`, { user_id: newcomer.id }],
    expect: [404, 403, 201, 201],
  },
  {
    name: "change a role",
    request: (f) => [
      "PUT",
      `/api/conversations/${f.conversation}/participants/${member2.id}`,
      { role: "admin" },
    ],
    expect: [404, 403, 403, 200],
  },
  {
    name: "remove another member",
    request: (f) => ["DELETE", `/api/conversations/${f.conversation}/participants/${member2.id}`],
    expect: [404, 403, 204, 204],
  },
  {
    name: "read history",
    request: (f) => ["GET", `/api/conversations/${f.conversation}/messages`],
    expect: [404, 200, 200, 200],
  },
  {
    name: "send in a group",
    request: (f) => ["POST", `/api/conversations/${f.conversation}/messages`, { content: "hi" }],
    expect: [404, 201, 201, 201],
  },
  {
    name: "send in a channel",
    type: "channel",
    request: (f) => ["POST", `/api/conversations/${f.conversation}/messages`, { content: "hi" }],
    expect: [404, 403, 201, 201],
  },
  {
    name: "search",
    request: (f) => ["GET", `/api/conversations/${f.conversation}/messages/search?q=hello`],
    expect: [404, 200, 200, 200],
  },
  {
    name: "catch up",
    request: (f) => ["GET", `/api/conversations/${f.conversation}/events?after=0`],
    expect: [404, 200, 200, 200],
  },
  {
    name: "mark read",
    request: (f) => ["POST", `/api/conversations/${f.conversation}/read`, { seq: 1 }],
    expect: [404, 200, 200, 200],
  },
  {
    name: "edit the owner's message",
    request: (f) => ["PUT", `/api/messages/${f.ownersMessage}`, { content: "edited" }],
    expect: [404, 403, 403, 200],
  },
  {
    name: "delete the owner's message",
    request: (f) => ["DELETE", `/api/messages/${f.ownersMessage}`],
    expect: [404, 403, 204, 204],
  },
  {
    name: "react",
    request: (f) => ["POST", `/api/messages/${f.ownersMessage}/reactions`, { emoji: "👍" }],
    expect: [404, 201, 201, 201],
  },
  {
    name: "remove a reaction",
    request: (f) => ["DELETE", `/api/messages/${f.ownersMessage}/reactions/${encodeURIComponent("👍")}`],
    expect: [404, 204, 204, 204],
  },
  {
    name: "read receipts",
    request: (f) => ["GET", `/api/messages/${f.ownersMessage}/receipts`],
    expect: [404, 200, 200, 200],
  },
];

const tokenOf = (role: Role) => ({ outsider, member, admin, owner })[role].token;

describe("authorization matrix", () => {
  for (const row of ROUTES) {
    it(`${row.name}: outsider ${row.expect[0]}, member ${row.expect[1]}, admin ${row.expect[2]}, owner ${row.expect[3]}`, async () => {
      const got: number[] = [];
      for (const role of ROLES) {
        const f = await fixture(row.type);
        const [method, path, body] = row.request(f);
        const res = await call(h.app, method, path, { token: tokenOf(role), body });
        got.push(res.status);
        if (role === "outsider") {
          // Not even the existence leaks: the same answer as for an id that never existed.
          expect(res.body.error.code).toBe("not_found");
        }
      }
      expect(got).toEqual(row.expect);
    });
  }

  it("answers a removed member 404 on the conversation and on their own messages in it, as an outsider", async () => {
    const f = await fixture();
    const mine = await call(h.app, "POST", `/api/conversations/${f.conversation}/messages`, {
      token: member.token,
      body: { content: "before I left", client_msg_id: "left-1" },
    });
    expect(mine.status).toBe(201);
    const removed = await call(
      h.app,
      "DELETE",
      `/api/conversations/${f.conversation}/participants/${member.id}`,
      {
        token: owner.token,
      },
    );
    expect(removed.status).toBe(204);
    const c = `/api/conversations/${f.conversation}`;
    const m = `/api/messages/${mine.body.id}`;
    for (const [method, path, body] of [
      ["PUT", m, { content: "rewritten after" }],
      ["DELETE", m],
      ["POST", `${m}/reactions`, { emoji: "👍" }],
      ["DELETE", `${m}/reactions/x`],
      ["GET", `${m}/receipts`],
      ["GET", `${c}/messages`],
      ["GET", `${c}/events?after=0`],
      ["POST", `${c}/read`, { seq: 1 }],
      ["POST", `${c}/messages`, { content: "before I left", client_msg_id: "left-1" }],
    ] as const) {
      const res = await call(h.app, method, path, { token: member.token, body });
      expect({ method, path, status: res.status, code: res.body.error?.code }).toEqual({
        method,
        path,
        status: 404,
        code: "not_found",
      });
    }
    const history = await call(h.app, "GET", `${c}/messages`, { token: owner.token });
    expect(history.body.items.find((x: { id: string }) => x.id === mine.body.id)).toMatchObject({
      content: "before I left",
      deleted: false,
      reactions: [],
    });
  });

  it("answers an unknown conversation and an unknown message with the same 404 as a foreign one", async () => {
    const unknown = "00000000000000000000";
    for (const [method, path] of [
      ["GET", `/api/conversations/${unknown}`],
      ["GET", `/api/conversations/${unknown}/messages`],
      ["PUT", `/api/messages/${unknown}`],
      ["GET", `/api/messages/${unknown}/receipts`],
    ] as const) {
      const res = await call(h.app, method, path, {
        token: outsider.token,
        body: method === "PUT" ? { content: "x" } : undefined,
      });
      expect({ path, status: res.status, code: res.body.error.code }).toEqual({
        path,
        status: 404,
        code: "not_found",
      });
    }
  });
});
