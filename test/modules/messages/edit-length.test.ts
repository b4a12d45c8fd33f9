// MAX_MESSAGE_LENGTH on edits (sends have theirs in conversations/messages.test.ts): an edit past it is
// refused with 422 and changes nothing; one at it, counted in bytes, is taken.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness({ MAX_MESSAGE_LENGTH: "100" });
});
afterAll(() => h.close());

it("refuses an edit over MAX_MESSAGE_LENGTH bytes with 422, leaving the message as it was; one at it is taken", async () => {
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  const id = await group(h.app, alice, [bob]);
  const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
    token: alice.token,
    body: { content: "first draft" },
  });
  expect(sent.status).toBe(201);
  const edit = (content: string) =>
    call(h.app, "PUT", `/api/messages/${sent.body.id}`, { token: alice.token, body: { content } });
  const stored = async () =>
    (await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token })).body.items[0];
  const lastSeq = async () =>
    (await call(h.app, "GET", `/api/conversations/${id}/events`, { token: alice.token })).body.last_seq;
  const before = await lastSeq();

  // 50 two-byte characters and one more byte: 101 bytes in 51 characters.
  for (const over of ["x".repeat(101), `${"é".repeat(50)}x`]) {
    const res = await edit(over);
    expect([res.status, res.body.error?.code, res.body.error?.field]).toEqual([
      422,
      "validation_failed",
      "content",
    ]);
  }
  expect(await stored()).toMatchObject({
    content: "first draft",
    edited_at: null,
    version_seq: sent.body.version_seq,
  });
  // Nothing was recorded for clients to catch up on either.
  expect(await lastSeq()).toBe(before);

  const atLimit = await edit("é".repeat(50));
  expect(atLimit.status).toBe(200);
  expect((await stored()).content).toBe("é".repeat(50));
  expect(await lastSeq()).toBeGreaterThan(before);
});
