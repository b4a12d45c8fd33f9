// The in-process backend: the shared contract, plus the bound on how much memory it may hold.

import { describe, expect, it } from "bun:test";
import { limiterTable } from "../../src/ratelimit/limits.ts";
import { MemoryBackend } from "../../src/ratelimit/memory.ts";
import { rateLimitContract, TEST_LIMITS } from "./contract.ts";

const memory = new MemoryBackend();
rateLimitContract("memory", memory, "", () => memory.close());

describe("MemoryBackend", () => {
  const api = limiterTable(TEST_LIMITS).api;

  it("drops buckets that have refilled once the sweep interval has passed", async () => {
    const backend = new MemoryBackend({ sweepIntervalMs: 1_000 });
    const t0 = 1_000_000;
    await backend.take(api, "a", t0);
    await backend.take(api, "b", t0);
    expect(backend.size).toBe(2);
    // One token is back after 10 s, so both buckets are full again and "c" triggers the sweep.
    await backend.take(api, "c", t0 + 10_000);
    expect(backend.size).toBe(1);
    // A dropped bucket behaves as a full one.
    expect((await backend.take(api, "a", t0 + 10_000)).remaining).toBe(7);
  });

  it("never holds more than maxBuckets, dropping the least recently used", async () => {
    const backend = new MemoryBackend({ maxBuckets: 10 });
    for (let i = 0; i < 25; i++) await backend.take(api, `k${i}`, 0);
    expect(backend.size).toBeLessThanOrEqual(10);
    // The most recent key survived with its count.
    expect((await backend.take(api, "k24", 0)).remaining).toBe(6);
  });

  it("rejects nonsense options when built", () => {
    expect(() => new MemoryBackend({ maxBuckets: 0 })).toThrow(/maxBuckets/);
    expect(() => new MemoryBackend({ sweepIntervalMs: -1 })).toThrow(/sweepIntervalMs/);
  });
});
