// The receipts memo: one read of a conversation's members per receipts version, shared by every resume
// that asks at that version (those asking at once too), never an answer from another version, and bounded.

import { describe, expect, it } from "bun:test";
import { unpack } from "msgpackr";
import { ReceiptsMemo } from "../../src/realtime/receipts-memo.ts";
import type { ParticipantRecord } from "../../src/store/types.ts";
import { member } from "../store/conversations-contract.ts";

const members = (n: number, read = 0) =>
  Array.from({ length: n }, (_, i) =>
    member("c-1", `u-${i}`, { delivered_seq: read + 1, last_read_seq: read }),
  );

/** A read of the members that counts its calls and answers when told to. */
function reader(answer: () => ParticipantRecord[]) {
  const calls = { n: 0 };
  const read = async () => {
    calls.n++;
    return answer();
  };
  return { calls, read };
}

describe("ReceiptsMemo", () => {
  it("reads once for every ask at one version, those made at the same moment too", async () => {
    const memo = new ReceiptsMemo();
    const { calls, read } = reader(() => members(3, 4));
    const [a, b] = await Promise.all([memo.snapshot("c-1", 7, read), memo.snapshot("c-1", 7, read)]);
    const c = await memo.snapshot("c-1", 7, read);
    expect(calls.n).toBe(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(a.version).toBe(7);
    expect(a.floor.read).toEqual([
      { user_id: "u-0", seq: 4 },
      { user_id: "u-1", seq: 4 },
    ]);
    expect(memo.heldMembers).toBe(4);
  });

  it("reads again at a newer version and keeps that one; an ask at an older one is answered alone", async () => {
    const memo = new ReceiptsMemo();
    let read = 1;
    const { calls, read: readMembers } = reader(() => members(2, read));
    await memo.snapshot("c-1", 3, readMembers);
    read = 5;
    const newer = await memo.snapshot("c-1", 4, readMembers);
    expect([calls.n, newer.floor.read[0]?.seq]).toEqual([2, 5]);
    // Asked at 3 (read just before the version moved): read for that caller, the newer one kept.
    const older = await memo.snapshot("c-1", 3, readMembers);
    expect(calls.n).toBe(3);
    expect(older.version).toBe(3);
    expect(await memo.snapshot("c-1", 4, readMembers)).toBe(newer);
    expect(calls.n).toBe(3);
  });

  it("keeps no failed read: the next ask reads again", async () => {
    const memo = new ReceiptsMemo();
    let fail = true;
    const { calls, read } = reader(() => {
      if (fail) throw new Error("store down");
      return members(1);
    });
    expect(memo.snapshot("c-1", 1, read)).rejects.toThrow("store down");
    await Bun.sleep(0);
    fail = false;
    expect((await memo.snapshot("c-1", 1, read)).version).toBe(1);
    expect(calls.n).toBe(2);
  });

  it("encodes its frame once per encoding, the same in each", async () => {
    const memo = new ReceiptsMemo();
    const snapshot = await memo.snapshot("c-1", 2, async () => members(2, 3));
    const json = snapshot.frame("json");
    expect(snapshot.frame("json")).toBe(json);
    const msgpack = snapshot.frame("msgpack");
    expect(snapshot.frame("msgpack")).toBe(msgpack);
    expect(unpack(msgpack as Uint8Array)).toEqual(JSON.parse(json as string));
    expect(JSON.parse(json as string)).toEqual({
      type: "receipts",
      conversation_id: "c-1",
      version: 2,
      members: [
        { user_id: "u-0", delivered: 4, read: 3 },
        { user_id: "u-1", delivered: 4, read: 3 },
      ],
    });
  });

  it("holds at most maxMembers, dropping the least recently used, and keeps none larger than a quarter", async () => {
    const memo = new ReceiptsMemo(40);
    const { calls, read } = reader(() => members(9));
    for (const id of ["c-a", "c-b", "c-c", "c-d"]) await memo.snapshot(id, 1, read);
    expect(memo.heldMembers).toBe(40);
    // c-a used again: c-b is the least recently used.
    await memo.snapshot("c-a", 1, read);
    await memo.snapshot("c-e", 1, read);
    expect(memo.heldMembers).toBe(40);
    const before = calls.n;
    await memo.snapshot("c-a", 1, read);
    expect(calls.n).toBe(before);
    await memo.snapshot("c-b", 1, read);
    expect(calls.n).toBe(before + 1);
    // Eleven members (and one) are more than a quarter of 40: answered, not kept.
    const big = new ReceiptsMemo(40);
    await big.snapshot("c-big", 1, async () => members(11));
    expect(big.heldMembers).toBe(0);
  });

  it("refuses a bound that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new ReceiptsMemo(bad)).toThrow(/maxMembers/);
  });
});
