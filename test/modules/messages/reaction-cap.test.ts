// MAX_REACTIONS_PER_USER: the distinct reactions one user may put on one message. Without a cap one user
// could pile thousands on a message, which every page of history and every event of it then carries.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
beforeAll(async () => {
  h = await harness({ MAX_REACTIONS_PER_USER: "3" });
  [alice, bob] = [await signup(h.app), await signup(h.app)];
});
afterAll(() => h.close());

it("takes MAX_REACTIONS_PER_USER distinct reactions from one user on one message, then 409 too_many_reactions", async () => {
  const id = await group(h.app, alice, [bob]);
  const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
    token: alice.token,
    body: { content: "react" },
  });
  const path = `/api/messages/${sent.body.id}/reactions`;
  const react = (u: User, emoji: string) => call(h.app, "POST", path, { token: u.token, body: { emoji } });
  for (const emoji of ["a", "b", "c"]) expect((await react(bob, emoji)).status).toBe(201);
  const over = await react(bob, "d");
  expect([over.status, over.body.error?.code]).toEqual([409, "too_many_reactions"]);
  // One already there is no new one: still 200.
  expect((await react(bob, "a")).status).toBe(200);
  // Each user has their own places.
  expect((await react(alice, "d")).status).toBe(201);
  // Taking one off frees its place.
  expect((await call(h.app, "DELETE", `${path}/a`, { token: bob.token })).status).toBe(204);
  expect((await react(bob, "d")).status).toBe(201);
  const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
  const mine = (u: User) =>
    page.body.items[0].reactions
      .filter((r: { user_id: string }) => r.user_id === u.id)
      .map((r: { emoji: string }) => r.emoji);
  expect(mine(bob)).toEqual(["b", "c", "d"]);
  expect(mine(alice)).toEqual(["d"]);
  // The refused one took no seq: 1 message, 4 adds by bob, 1 by alice, 1 removal.
  const events = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: bob.token });
  expect(events.body.last_seq).toBe(7);
});
