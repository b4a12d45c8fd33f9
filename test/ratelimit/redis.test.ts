// The Redis backend against the real Redis: the shared contract, the key layout and expiry, a budget shared
// by several servers, and what each limiter does when Redis cannot be reached.

import { afterAll, describe, expect, it } from "bun:test";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { ManualClock } from "../../src/lib/clock.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { RateLimiters } from "../../src/ratelimit/index.ts";
import { limiterTable } from "../../src/ratelimit/limits.ts";
import { createRedisClient, DEFAULT_KEY_PREFIX, RedisBackend } from "../../src/ratelimit/redis.ts";
import { rejection } from "../helpers.ts";
import { rateLimitContract, TEST_LIMITS } from "./contract.ts";

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
/** Every key this run writes contains RUN, so cleanup finds exactly them. */
const RUN = `test-${crypto.randomUUID()}:`;
const silent = createLogger("silent");

/** A plain client for looking at and deleting keys. */
const admin = new Redis(REDIS_URL);

async function deleteRunKeys() {
  let cursor = "0";
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `${DEFAULT_KEY_PREFIX}*${RUN}*`, "COUNT", 1000);
    if (keys.length > 0) await admin.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

afterAll(async () => {
  await deleteRunKeys();
  await admin.quit();
});

const contractBackend = new RedisBackend(createRedisClient(REDIS_URL, silent));
rateLimitContract("redis", contractBackend, RUN, () => contractBackend.close());

describe("RedisBackend", () => {
  const table = limiterTable(TEST_LIMITS);

  it("stores a bucket at parley:rl:<name>:<key> that expires when it would be full", async () => {
    const backend = new RedisBackend(createRedisClient(REDIS_URL, silent));
    try {
      const key = `${RUN}layout`;
      await backend.take(table.api, key, Date.now());
      const redisKey = `parley:rl:api:${key}`;
      expect(backend.keyOf(table.api, key)).toBe(redisKey);
      expect(Object.keys(await admin.hgetall(redisKey)).sort()).toEqual(["tokens", "ts"]);
      // One token spent, one back every 10 s.
      const ttl = await admin.pttl(redisKey);
      expect(ttl).toBeGreaterThan(9_000);
      expect(ttl).toBeLessThanOrEqual(10_000);
    } finally {
      await backend.close();
    }
  });

  it("shares one budget between servers using the same Redis", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const a = new RateLimiters(new RedisBackend(createRedisClient(REDIS_URL, silent)), table, clock, silent);
    const b = new RateLimiters(new RedisBackend(createRedisClient(REDIS_URL, silent)), table, clock, silent);
    try {
      const key = `${RUN}shared`;
      for (let i = 0; i < 2; i++) await a.check("signin", key);
      for (let i = 0; i < 2; i++) await b.check("signin", key);
      expect((await rejection(a.check("signin", key))).code).toBe("rate_limited");
      expect((await rejection(b.check("signin", key))).code).toBe("rate_limited");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("when Redis is unreachable", () => {
  const logs: string[] = [];
  const logger = createLogger(
    "warn",
    new Writable({
      write(chunk, _enc, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );
  // Nothing listens on port 1: every connection attempt is refused.
  const limiters = new RateLimiters(
    new RedisBackend(createRedisClient("redis://127.0.0.1:1", logger)),
    limiterTable(TEST_LIMITS),
    new ManualClock(),
    logger,
  );
  afterAll(() => limiters.close());

  it("lets requests through a fail-open limiter, at once, with a warning that names no key", async () => {
    const started = performance.now();
    expect(await limiters.check("api", "user:secret-user-id")).toEqual({});
    expect(performance.now() - started).toBeLessThan(1_000);
    const warning = logs.find((l) => l.includes('"limiter":"api"'));
    expect(warning).toBeDefined();
    expect(warning).toContain('"level":"warn"');
    expect(logs.join("")).not.toContain("secret-user-id");
  });

  it("refuses requests on a fail-closed limiter, at once, with 503 and Retry-After", async () => {
    for (const name of ["signup", "signin", "refresh", "magic_link_ip", "magic_link_email"] as const) {
      const started = performance.now();
      const err = await rejection(limiters.check(name, "email:someone@example.com"));
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(err.code).toBe("unavailable");
      expect(err.status).toBe(503);
      expect(err.headers["Retry-After"]).toBe("5");
    }
    expect(logs.join("")).not.toContain("someone@example.com");
  });
});
