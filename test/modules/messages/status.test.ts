// A message's status from the conversation's two lowest positions of each kind (statusOf over the store's
// positionFloor) says what the straightforward rule over every member says, for any set of members.

import { describe, expect, it } from "bun:test";
import { type MessageStatus, statusOf } from "../../../src/modules/messages/model.ts";
import { floorOf } from "../../../src/store/floor.ts";
import { openSqliteStore } from "../../../src/store/sqlite/index.ts";
import type { ParticipantRecord } from "../../../src/store/types.ts";
import { Rng } from "../../fuzz.ts";
import { conversation, member } from "../../store/conversations-contract.ts";

/** The rule as it was written before the floor: every member other than the sender, each compared. */
function straightforward(message: { seq: number; sender_id: string }, members: ParticipantRecord[]) {
  const others = members.filter((p) => p.user_id !== message.sender_id);
  if (others.length === 0) return "sent";
  if (others.every((p) => p.last_read_seq >= message.seq)) return "read";
  if (others.every((p) => p.delivered_seq >= message.seq)) return "delivered";
  return "sent";
}

/**
 * Up to `max` members drawn from a small pool of users (so that senders are often members, sometimes not),
 * with positions in a small range (so that ties, and messages on either side of them, are common).
 */
function randomMembers(rng: Rng, conversationId: string, max: number): ParticipantRecord[] {
  const users = new Set<string>();
  const size = rng.int(max + 1);
  while (users.size < size) users.add(`u-${rng.int(max + 4)}`);
  return [...users].map((user) => {
    const read = rng.int(8);
    return member(conversationId, user, { last_read_seq: read, delivered_seq: read + rng.int(4) });
  });
}

const sender = (rng: Rng, members: ParticipantRecord[], max: number) =>
  rng.chance(0.7) && members.length > 0 ? rng.pick(members).user_id : `u-${rng.int(max + 4)}`;

describe("status from the two lowest positions", () => {
  it("equals the rule over every member, for 20,000 random members and messages", () => {
    const rng = new Rng(7);
    const seen = new Set<MessageStatus>();
    for (let n = 0; n < 20_000; n++) {
      const members = randomMembers(rng, "c-1", 10);
      const floor = floorOf(members);
      for (let k = 0; k < 4; k++) {
        const message = { seq: 1 + rng.int(12), sender_id: sender(rng, members, 10) };
        const expected = straightforward(message, members);
        expect(statusOf(message, floor)).toBe(expected);
        seen.add(expected);
      }
    }
    // The sets reached every status: the comparison was not of "sent" alone.
    expect([...seen].sort()).toEqual(["delivered", "read", "sent"]);
  });

  it("equals the rule over every member with the floor read from the store (SQLite)", async () => {
    const store = openSqliteStore(":memory:");
    try {
      const rng = new Rng(11);
      for (let n = 0; n < 400; n++) {
        const id = `c-${n}`;
        const members = randomMembers(rng, id, 12);
        await store.conversations.create(conversation(id), members);
        const floor = await store.conversations.positionFloor(id);
        const stored = await store.conversations.participants(id);
        for (let k = 0; k < 6; k++) {
          const message = { seq: 1 + rng.int(12), sender_id: sender(rng, members, 12) };
          expect(statusOf(message, floor)).toBe(straightforward(message, stored));
        }
      }
    } finally {
      await store.close();
    }
  });

  it("gives the statuses of a channel of 10,000 members from its two lowest positions of each kind", async () => {
    const store = openSqliteStore(":memory:");
    try {
      const members = Array.from({ length: 10_000 }, (_, i) =>
        member("c-big", `u-${String(i).padStart(5, "0")}`, { last_read_seq: 50, delivered_seq: 60 }),
      );
      // The sender lags; one other member has read less than everyone.
      members[0] = member("c-big", "u-00000", { last_read_seq: 3, delivered_seq: 3 });
      members[9_999] = member("c-big", "u-09999", { last_read_seq: 40, delivered_seq: 60 });
      await store.conversations.create(conversation("c-big", { conversation_type: "channel" }), members);
      const floor = await store.conversations.positionFloor("c-big");
      expect(floor.read).toEqual([
        { user_id: "u-00000", seq: 3 },
        { user_id: "u-09999", seq: 40 },
      ]);
      const stored = await store.conversations.participants("c-big");
      for (const seq of [3, 4, 40, 41, 60, 61])
        for (const sender_id of ["u-00000", "u-09999", "u-00001", "u-outsider"])
          expect(statusOf({ seq, sender_id }, floor)).toBe(straightforward({ seq, sender_id }, stored));
    } finally {
      await store.close();
    }
  });
});
