// The reads of a conversation's log the SQLite store keeps: kept the second time they are made, answered
// while the conversation's last_seq is the one they were read at, dropped when it moves, and held within
// their byte budget, least recently used out first.

import { describe, expect, it } from "bun:test";
import { ReadsMemo, rowBytes } from "../../src/store/sqlite/reads-memo.ts";
import type { MessageRecord } from "../../src/store/types.ts";

const records = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `m-${i}` }) as unknown as MessageRecord);

/** The same read made twice, as two members catching up from one position: the second is kept. */
function readTwice(
  memo: ReadsMemo,
  conversationId: string,
  lastSeq: number,
  read: string,
  kept: readonly MessageRecord[],
  bytes: number,
) {
  memo.set(conversationId, lastSeq, read, records(kept.length), bytes);
  memo.set(conversationId, lastSeq, read, kept, bytes);
}

describe("ReadsMemo", () => {
  it("keeps a read the second time it is made, not the first", () => {
    const memo = new ReadsMemo(10_000);
    const first = records(2);
    memo.set("c-1", 5, "events:0:100", first, 10);
    expect(memo.get("c-1", 5, "events:0:100")).toBeUndefined();
    const second = records(2);
    memo.set("c-1", 5, "events:0:100", second, 10);
    expect(memo.get("c-1", 5, "events:0:100")).toBe(second);
    // A third changes nothing.
    memo.set("c-1", 5, "events:0:100", records(2), 10);
    expect(memo.get("c-1", 5, "events:0:100")).toBe(second);
  });

  it("freezes what it keeps, which every caller shares from then on", () => {
    const memo = new ReadsMemo(10_000);
    const kept = [
      {
        id: "m-1",
        content: "hi",
        attachments: [],
        reactions: [{ user_id: "u-1", emoji: "👍" }],
        envelope: null,
      },
    ] as unknown as MessageRecord[];
    readTwice(memo, "c-1", 1, "latest:10", kept, 10);
    const [record] = memo.get("c-1", 1, "latest:10") as MessageRecord[];
    expect(() => Object.assign(record as MessageRecord, { content: "changed" })).toThrow();
    expect(() => record?.reactions.push({ user_id: "u-2", emoji: "👎" })).toThrow();
    expect(record?.content).toBe("hi");
  });

  it("answers a read while the conversation's last_seq has not moved, each read by its name", () => {
    const memo = new ReadsMemo(10_000);
    const read = records(2);
    readTwice(memo, "c-1", 5, "events:0:100", read, 10);
    expect(memo.get("c-1", 5, "events:0:100")).toBe(read);
    expect(memo.get("c-1", 5, "events:1:100")).toBeUndefined();
    expect(memo.get("c-1", 5, "events:0:50")).toBeUndefined();
    expect(memo.get("c-2", 5, "events:0:100")).toBeUndefined();
  });

  it("drops every read of a conversation whose last_seq moved", () => {
    const memo = new ReadsMemo(10_000);
    readTwice(memo, "c-1", 5, "events:0:100", records(2), 10);
    readTwice(memo, "c-1", 5, "events:3:100", records(1), 10);
    expect(memo.heldBytes).toBeGreaterThan(20);
    expect(memo.get("c-1", 6, "events:0:100")).toBeUndefined();
    expect(memo.heldBytes).toBe(0);
    // Gone for the old last_seq as well.
    expect(memo.get("c-1", 5, "events:3:100")).toBeUndefined();
  });

  it("keeps a newer read over the conversation's older ones and never an older over newer ones", () => {
    const memo = new ReadsMemo(10_000);
    readTwice(memo, "c-1", 5, "events:0:100", records(2), 10);
    const newer = records(3);
    readTwice(memo, "c-1", 6, "events:0:100", newer, 15);
    const held = memo.heldBytes;
    readTwice(memo, "c-1", 5, "events:1:100", records(1), 5);
    expect(memo.heldBytes).toBe(held);
    expect(memo.get("c-1", 6, "events:1:100")).toBeUndefined();
    expect(memo.get("c-1", 6, "events:0:100")).toBe(newer);
  });

  it("holds at most its bytes, dropping the least recently used conversation first", () => {
    const memo = new ReadsMemo(1000);
    for (const id of ["c-1", "c-2", "c-3"]) readTwice(memo, id, 1, "latest:10", records(1), 200);
    expect(memo.get("c-1", 1, "latest:10")).toBeDefined(); // c-1 used last: c-2 is now the oldest
    for (const id of ["c-4", "c-5"]) readTwice(memo, id, 1, "latest:10", records(1), 200);
    expect(memo.heldBytes).toBeLessThanOrEqual(1000);
    expect(memo.get("c-2", 1, "latest:10")).toBeUndefined();
    expect(memo.get("c-1", 1, "latest:10")).toBeDefined();
    expect(memo.get("c-5", 1, "latest:10")).toBeDefined();
  });

  it("counts the reads it only noted within its bytes too", () => {
    const memo = new ReadsMemo(1000);
    for (let i = 0; i < 100; i++) memo.set(`c-${i}`, 1, `events:${i}:201`, records(1), 10);
    expect(memo.heldBytes).toBeGreaterThan(0);
    expect(memo.heldBytes).toBeLessThanOrEqual(1000);
  });

  it("answers a read larger than a quarter of its bytes without keeping it", () => {
    const memo = new ReadsMemo(1000);
    readTwice(memo, "c-1", 1, "latest:10", records(1), 251);
    expect(memo.get("c-1", 1, "latest:10")).toBeUndefined();
    expect(memo.heldBytes).toBe(0);
  });

  it("counts a row by its text columns and a fixed overhead", () => {
    const small = rowBytes({ content: "", attachments: "[]", reactions: "[]", envelope: null });
    const large = rowBytes({ content: "x".repeat(1000), attachments: "[]", reactions: "[]", envelope: "{}" });
    expect(large - small).toBe(1002);
    expect(small).toBeGreaterThan(4);
  });

  it("refuses a budget that is not a positive integer", () => {
    expect(() => new ReadsMemo(0)).toThrow();
    expect(() => new ReadsMemo(1.5)).toThrow();
  });
});
