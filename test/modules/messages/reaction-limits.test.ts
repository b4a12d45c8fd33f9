// A message's reactions have a bound, over REST and over the socket alike: MAX_REACTIONS_PER_MESSAGE
// reactions in all and MAX_REACTION_EMOJI different emoji (here 5 and 3, not the defaults). Every frame of
// the message carries the whole list, so with no bound one member could grow it past WS_BACKPRESSURE_LIMIT.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ConversationEvent } from "../../../src/realtime/hub.ts";
import { call, group, type Harness, harness, signup } from "../../helpers.ts";
import { type TestSocket, userSocket } from "../../realtime/ws-client.ts";

let h: Harness;
let base: string;
type User = Awaited<ReturnType<typeof signup>>;
let users: User[];
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness({ MAX_REACTIONS_PER_MESSAGE: "5", MAX_REACTION_EMOJI: "3" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
  users = await Promise.all(Array.from({ length: 8 }, () => signup(h.app)));
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

const user = (i: number) => users[i] as User;

/** A group of every user and a message in it, by the first. */
async function message() {
  const id = await group(h.app, user(0), users.slice(1));
  const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
    token: user(0).token,
    body: { content: "react to me" },
  });
  expect(sent.status).toBe(201);
  return { conversationId: id, messageId: sent.body.id as string };
}
const react = (u: User, messageId: string, emoji: string) =>
  call(h.app, "POST", `/api/messages/${messageId}/reactions`, { token: u.token, body: { emoji } });
const unreact = (u: User, messageId: string, emoji: string) =>
  call(h.app, "DELETE", `/api/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`, {
    token: u.token,
  });
const outcome = (res: { status: number; body: { error?: { code: string } } }) =>
  res.body?.error ? [res.status, res.body.error.code] : [res.status];
async function reactionsOf(conversationId: string, messageId: string) {
  const page = await call(h.app, "GET", `/api/conversations/${conversationId}/messages`, {
    token: user(0).token,
  });
  return page.body.items.find((m: { id: string }) => m.id === messageId).reactions as {
    user_id: string;
    emoji: string;
  }[];
}

describe("reaction limits over REST", () => {
  it("takes MAX_REACTION_EMOJI different emoji, refuses a new one with 409 reaction_limit, and takes more of those", async () => {
    const { conversationId, messageId } = await message();
    for (const emoji of ["👍", "🎉", "🔥"])
      expect(outcome(await react(user(0), messageId, emoji))).toEqual([201]);
    const events: ConversationEvent[] = [];
    const off = h.deps.hub.subscribe(conversationId, (e) => events.push(e));
    expect(outcome(await react(user(0), messageId, "😀"))).toEqual([409, "reaction_limit"]);
    expect(outcome(await react(user(1), messageId, "😀"))).toEqual([409, "reaction_limit"]);
    off();
    expect(events).toEqual([]);
    // One of those there: another member's is taken, one already there is still 200.
    expect(outcome(await react(user(1), messageId, "🎉"))).toEqual([201]);
    expect(outcome(await react(user(0), messageId, "👍"))).toEqual([200]);
    // An emoji no one holds any more makes room for another.
    expect(outcome(await unreact(user(0), messageId, "🔥"))).toEqual([204]);
    expect(outcome(await react(user(1), messageId, "😀"))).toEqual([201]);
    expect((await reactionsOf(conversationId, messageId)).map((r) => r.emoji).sort()).toEqual(
      ["👍", "🎉", "🎉", "😀"].sort(),
    );
  });

  it("takes MAX_REACTIONS_PER_MESSAGE reactions in all and refuses one more with 409 reaction_limit", async () => {
    const { conversationId, messageId } = await message();
    for (const i of [0, 1, 2, 3, 4]) expect(outcome(await react(user(i), messageId, "👍"))).toEqual([201]);
    expect(outcome(await react(user(5), messageId, "👍"))).toEqual([409, "reaction_limit"]);
    expect(outcome(await react(user(0), messageId, "🎉"))).toEqual([409, "reaction_limit"]);
    // Already there: nothing to add, so no refusal.
    expect(outcome(await react(user(4), messageId, "👍"))).toEqual([200]);
    expect(await reactionsOf(conversationId, messageId)).toHaveLength(5);
    // A reaction removed makes room for one.
    expect(outcome(await unreact(user(4), messageId, "👍"))).toEqual([204]);
    expect(outcome(await react(user(5), messageId, "👍"))).toEqual([201]);
    expect((await reactionsOf(conversationId, messageId)).map((r) => r.user_id)).toEqual(
      [0, 1, 2, 3, 5].map((i) => user(i).id),
    );
  });

  it("lets no more than MAX_REACTIONS_PER_MESSAGE through when members react at the same moment", async () => {
    const { conversationId, messageId } = await message();
    const results = await Promise.all(users.map((u) => react(u, messageId, "🔥")));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 201, 201, 201, 409, 409, 409]);
    expect(await reactionsOf(conversationId, messageId)).toHaveLength(5);
  });
});

describe("reaction limits over the socket", () => {
  const socket = (u: User) => userSocket(base, u, "json", open);

  it("answers a reaction frame past either limit with error reaction_limit, and one at the limit with ok", async () => {
    const { conversationId, messageId } = await message();
    const s = await socket(user(1));
    const frame = (ref: string, emoji: string) => {
      s.send({ type: "reaction", ref, message_id: messageId, emoji, op: "add" });
      return s.next((f) => f.ref === ref);
    };
    // The third emoji is the last place among MAX_REACTION_EMOJI; a fourth is refused.
    for (const emoji of ["👍", "🎉"]) expect(outcome(await react(user(0), messageId, emoji))).toEqual([201]);
    expect(await frame("third", "🔥")).toMatchObject({ type: "ok" });
    expect(await frame("fourth", "😀")).toMatchObject({ type: "error", code: "reaction_limit" });
    // The fifth reaction is the last place among MAX_REACTIONS_PER_MESSAGE; a sixth is refused.
    expect(outcome(await react(user(2), messageId, "👍"))).toEqual([201]);
    expect(await frame("fifth", "👍")).toMatchObject({ type: "ok" });
    expect(await frame("sixth", "🎉")).toMatchObject({ type: "error", code: "reaction_limit" });
    expect(await reactionsOf(conversationId, messageId)).toEqual([
      { user_id: user(0).id, emoji: "👍" },
      { user_id: user(0).id, emoji: "🎉" },
      { user_id: user(1).id, emoji: "🔥" },
      { user_id: user(2).id, emoji: "👍" },
      { user_id: user(1).id, emoji: "👍" },
    ]);
  });
});
