// A group has at most MAX_GROUP_MEMBERS members (here 4, not the default): every view of it lists them all,
// as a resume's receipts frame does. Created with more: 422; one more added: 409 group_full, adds at the same
// moment included. A group already larger keeps its members; a channel has no such bound.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup } from "../../helpers.ts";
import { conversation, member } from "../../store/conversations-contract.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let users: User[];

beforeAll(async () => {
  h = await harness({ MAX_GROUP_MEMBERS: "4" });
  users = await Promise.all(Array.from({ length: 10 }, () => signup(h.app)));
});
afterAll(() => h.close());

const user = (i: number) => users[i] as User;
const outcome = (res: { status: number; body: { error?: { code: string; field?: string } } }) =>
  res.body?.error ? [res.status, res.body.error.code] : [res.status];
const create = (type: string, members: User[]) =>
  call(h.app, "POST", "/api/conversations", {
    token: user(0).token,
    body: { conversation_type: type, participant_ids: members.map((m) => m.id) },
  });
const add = (id: string, u: User) =>
  call(h.app, "POST", `/api/conversations/${id}/participants`, {
    token: user(0).token,
    body: { user_id: u.id },
  });
const members = async (id: string) =>
  (await call(h.app, "GET", `/api/conversations/${id}`, { token: user(0).token })).body.member_count;

describe("a group's size", () => {
  it("is created with MAX_GROUP_MEMBERS members, its creator among them, and not one more (422)", async () => {
    const full = await create("group", [user(0), user(1), user(2), user(3)]);
    expect(full.status).toBe(201);
    expect(full.body.member_count).toBe(4);
    const over = await create("group", [user(1), user(2), user(3), user(4)]);
    expect(outcome(over)).toEqual([422, "validation_failed"]);
    expect(over.body.error.field).toBe("participant_ids");
    // A channel has no such bound.
    expect((await create("channel", [user(1), user(2), user(3), user(4), user(5)])).status).toBe(201);
  });

  it("takes members up to MAX_GROUP_MEMBERS and refuses one more with 409 group_full", async () => {
    const id = await group(h.app, user(0), [user(1), user(2)]);
    expect(outcome(await add(id, user(3)))).toEqual([201]);
    const before = (await call(h.app, "GET", `/api/conversations/${id}`, { token: user(0).token })).body
      .last_seq;
    expect(outcome(await add(id, user(4)))).toEqual([409, "group_full"]);
    // Already in: already_member, full or not.
    expect(outcome(await add(id, user(3)))).toEqual([409, "already_member"]);
    const after = (await call(h.app, "GET", `/api/conversations/${id}`, { token: user(0).token })).body;
    expect([after.member_count, after.last_seq]).toEqual([4, before]);
    // A member who leaves makes room.
    const left = await call(h.app, "DELETE", `/api/conversations/${id}/participants/${user(3).id}`, {
      token: user(3).token,
    });
    expect(left.status).toBe(204);
    expect(outcome(await add(id, user(4)))).toEqual([201]);
  });

  it("lets no more than MAX_GROUP_MEMBERS in when members are added at the same moment", async () => {
    const id = await group(h.app, user(0), [user(1)]);
    const results = await Promise.all(users.slice(2).map((u) => add(id, u)));
    expect(results.map((r) => outcome(r).join(" ")).sort()).toEqual([
      "201",
      "201",
      ...Array(6).fill("409 group_full"),
    ]);
    expect(await members(id)).toBe(4);
  });

  it("leaves a group already past it with its members: they stay and talk, and no one more is added", async () => {
    // Made through the store, as one made under a larger bound (or before there was one) is.
    const id = "c-large-group";
    await h.deps.store.conversations.create(
      conversation(id, { conversation_type: "group", created_by: user(0).id }),
      users.slice(0, 6).map((u, i) => member(id, u.id, { role: i === 0 ? "owner" : "member" })),
    );
    expect(await members(id)).toBe(6);
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: user(5).token,
      body: { content: "still here" },
    });
    expect(sent.status).toBe(201);
    expect(outcome(await add(id, user(6)))).toEqual([409, "group_full"]);
    const left = await call(h.app, "DELETE", `/api/conversations/${id}/participants/${user(5).id}`, {
      token: user(5).token,
    });
    expect(left.status).toBe(204);
    // Five are still more than four: no room yet.
    expect(outcome(await add(id, user(6)))).toEqual([409, "group_full"]);
    expect(await members(id)).toBe(5);
  });

  it("does not bound a channel", async () => {
    const made = await create("channel", [user(1)]);
    const id = made.body.id as string;
    for (const i of [2, 3, 4, 5, 6]) expect(outcome(await add(id, user(i)))).toEqual([201]);
    expect(await members(id)).toBe(7);
  });
});
