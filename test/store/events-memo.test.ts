// The catch-up reads the SQLite store keeps: answered while the conversation's last_seq is the one they were
// read at, dropped when it moves, and held within their byte budget, least recently used out first.

import { describe, expect, it } from "bun:test";
import { EventsMemo, rowBytes } from "../../src/store/sqlite/events-memo.ts";
import type { MessageRecord } from "../../src/store/types.ts";

const records = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `m-${i}` }) as unknown as MessageRecord);

describe("EventsMemo", () => {
  it("answers a read while the conversation's last_seq has not moved, per position and limit", () => {
    const memo = new EventsMemo(1000);
    const read = records(2);
    memo.set("c-1", 5, 0, 100, read, 10);
    expect(memo.get("c-1", 5, 0, 100)).toBe(read);
    expect(memo.get("c-1", 5, 1, 100)).toBeUndefined();
    expect(memo.get("c-1", 5, 0, 50)).toBeUndefined();
    expect(memo.get("c-2", 5, 0, 100)).toBeUndefined();
  });

  it("drops every read of a conversation whose last_seq moved", () => {
    const memo = new EventsMemo(1000);
    memo.set("c-1", 5, 0, 100, records(2), 10);
    memo.set("c-1", 5, 3, 100, records(1), 10);
    expect(memo.heldBytes).toBe(20);
    expect(memo.get("c-1", 6, 0, 100)).toBeUndefined();
    expect(memo.heldBytes).toBe(0);
    // Gone for the old last_seq as well.
    expect(memo.get("c-1", 5, 3, 100)).toBeUndefined();
  });

  it("keeps a newer read over the conversation's older ones and never an older over newer ones", () => {
    const memo = new EventsMemo(1000);
    memo.set("c-1", 5, 0, 100, records(2), 10);
    const newer = records(3);
    memo.set("c-1", 6, 0, 100, newer, 15);
    expect(memo.heldBytes).toBe(15);
    memo.set("c-1", 5, 1, 100, records(1), 5);
    expect(memo.heldBytes).toBe(15);
    expect(memo.get("c-1", 6, 1, 100)).toBeUndefined();
    expect(memo.get("c-1", 6, 0, 100)).toBe(newer);
  });

  it("holds at most its bytes, dropping the least recently used conversation first", () => {
    const memo = new EventsMemo(100);
    memo.set("c-1", 1, 0, 10, records(1), 25);
    memo.set("c-2", 1, 0, 10, records(1), 25);
    memo.set("c-3", 1, 0, 10, records(1), 25);
    expect(memo.get("c-1", 1, 0, 10)).toBeDefined(); // c-1 used last: c-2 is now the oldest
    memo.set("c-4", 1, 0, 10, records(1), 25);
    memo.set("c-5", 1, 0, 10, records(1), 25);
    expect(memo.heldBytes).toBeLessThanOrEqual(100);
    expect(memo.get("c-2", 1, 0, 10)).toBeUndefined();
    expect(memo.get("c-1", 1, 0, 10)).toBeDefined();
    expect(memo.get("c-5", 1, 0, 10)).toBeDefined();
  });

  it("answers a read larger than a quarter of its bytes without keeping it", () => {
    const memo = new EventsMemo(100);
    memo.set("c-1", 1, 0, 10, records(1), 26);
    expect(memo.get("c-1", 1, 0, 10)).toBeUndefined();
    expect(memo.heldBytes).toBe(0);
  });

  it("counts a row by its text columns and a fixed overhead", () => {
    const small = rowBytes({ content: "", attachments: "[]", reactions: "[]", envelope: null });
    const large = rowBytes({ content: "x".repeat(1000), attachments: "[]", reactions: "[]", envelope: "{}" });
    expect(large - small).toBe(1002);
    expect(small).toBeGreaterThan(4);
  });

  it("refuses a budget that is not a positive integer", () => {
    expect(() => new EventsMemo(0)).toThrow();
    expect(() => new EventsMemo(1.5)).toThrow();
  });
});
