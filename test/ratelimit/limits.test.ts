// The limiter table comes from config, is checked when limiters are built, and the backend follows REDIS_URL.

import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/lib/clock.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { createRateLimiters, RateLimiters } from "../../src/ratelimit/index.ts";
import { limiterTable } from "../../src/ratelimit/limits.ts";
import { MemoryBackend } from "../../src/ratelimit/memory.ts";
import { RedisBackend } from "../../src/ratelimit/redis.ts";
import { TEST_LIMITS } from "./contract.ts";

const silent = createLogger("silent");

describe("limiter table", () => {
  it("derives every limiter's bucket, refill rate and failure mode from config", () => {
    expect(
      limiterTable({
        RATE_LIMIT_PER_MINUTE: 60,
        RATE_LIMIT_BURST: 10,
        AUTH_RATE_LIMIT_PER_MINUTE: 12,
        AUTH_RATE_LIMIT_BURST: 3,
        MAGIC_LINK_PER_HOUR: 5,
      }),
    ).toEqual({
      api: { name: "api", capacity: 70, refillPerSecond: 1, failOpen: true },
      signup: { name: "signup", capacity: 15, refillPerSecond: 0.2, failOpen: false },
      signin: { name: "signin", capacity: 15, refillPerSecond: 0.2, failOpen: false },
      refresh: { name: "refresh", capacity: 15, refillPerSecond: 0.2, failOpen: false },
      magic_link_ip: { name: "magic_link_ip", capacity: 15, refillPerSecond: 0.2, failOpen: false },
      magic_link_email: { name: "magic_link_email", capacity: 5, refillPerSecond: 5 / 3600, failOpen: false },
    });
  });

  it("refuses a table that could not work, naming the limiter", () => {
    const table = limiterTable(TEST_LIMITS);
    const broken = { ...table, signin: { ...table.signin, capacity: 0 } };
    expect(() => new RateLimiters(new MemoryBackend(), broken, new ManualClock(), silent)).toThrow(
      /"signin": capacity/,
    );
  });
});

describe("createRateLimiters", () => {
  it("keeps buckets in memory when REDIS_URL is empty", async () => {
    const limiters = createRateLimiters({ ...TEST_LIMITS, REDIS_URL: "" }, new ManualClock(), silent);
    expect(limiters.backend).toBeInstanceOf(MemoryBackend);
    await limiters.close();
  });

  it("keeps buckets in Redis when REDIS_URL is set", async () => {
    const url = process.env.REDIS_URL || "redis://127.0.0.1:6379";
    const limiters = createRateLimiters({ ...TEST_LIMITS, REDIS_URL: url }, new ManualClock(), silent);
    expect(limiters.backend).toBeInstanceOf(RedisBackend);
    expect((limiters.backend as RedisBackend).keyOf(limiterTable(TEST_LIMITS).api, "k")).toBe(
      "parley:rl:api:k",
    );
    await limiters.close();
  });

  it("starts its Redis keys with REDIS_PREFIX", async () => {
    const url = process.env.REDIS_URL || "redis://127.0.0.1:6379";
    const config = { ...TEST_LIMITS, REDIS_URL: url, REDIS_PREFIX: "tenant-b:" };
    const limiters = createRateLimiters(config, new ManualClock(), silent);
    expect((limiters.backend as RedisBackend).keyOf(limiterTable(TEST_LIMITS).api, "k")).toBe(
      "tenant-b:rl:api:k",
    );
    await limiters.close();
  });
});
