// Ids sort by time and do not repeat; the memoized ISO formatting gives each time its own text.

import { expect, it } from "bun:test";
import { iso, isoOrNull } from "../../src/lib/clock.ts";
import { isId, newId, newSecret } from "../../src/lib/ids.ts";

it("makes 20-character ids that sort by their millisecond and never repeat", () => {
  const t = Date.UTC(2026, 10, 29, 12, 0, 0);
  const ids: string[] = [];
  // More ids than one 4 KiB random pool holds, over a few milliseconds.
  for (let i = 0; i < 5000; i++) ids.push(newId(t + Math.floor(i / 1000)));
  expect(ids.every(isId)).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
  for (let i = 1000; i < ids.length; i += 1000) {
    expect((ids[i - 1] as string) < (ids[i] as string)).toBe(true);
  }
  // The time part is the same for a millisecond and grows with it.
  expect(newId(t).slice(0, 10)).toBe(newId(t).slice(0, 10));
  expect(newId(t).slice(0, 10) < newId(t + 1).slice(0, 10)).toBe(true);
  expect(newId(t + 1).slice(0, 10) < newId(t + 32).slice(0, 10)).toBe(true);
});

it("spreads the random part over the whole alphabet", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) for (const ch of newId(0).slice(10)) seen.add(ch);
  expect(seen.size).toBe(32);
});

it("makes secrets of the asked-for size, base64url", () => {
  expect(newSecret()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(newSecret(16)).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(newSecret()).not.toBe(newSecret());
});

it("formats each time as its own ISO text, also when times repeat and alternate", () => {
  const a = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
  expect(iso(a)).toBe("2026-01-02T03:04:05.006Z");
  expect(iso(a)).toBe("2026-01-02T03:04:05.006Z");
  expect(iso(a + 1)).toBe("2026-01-02T03:04:05.007Z");
  expect(iso(a)).toBe("2026-01-02T03:04:05.006Z");
  expect(isoOrNull(null)).toBeNull();
  expect(() => iso(Number.NaN)).toThrow();
});
