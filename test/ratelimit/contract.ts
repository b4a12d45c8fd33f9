// The behaviour every RateLimitBackend must show, written once and run against each backend (memory, Redis).

import { afterAll, beforeEach, describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/lib/clock.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { type RateLimitBackend, RateLimiters } from "../../src/ratelimit/index.ts";
import { type LimitConfig, limiterTable } from "../../src/ratelimit/limits.ts";
import { rejection } from "../helpers.ts";

/** Small numbers so the arithmetic in the expectations is easy to follow. */
export const TEST_LIMITS: LimitConfig = {
  RATE_LIMIT_PER_MINUTE: 6, // api: 8 tokens, one back every 10 s
  RATE_LIMIT_BURST: 2,
  AUTH_RATE_LIMIT_PER_MINUTE: 3, // auth limiters: 4 tokens, one back every 20 s
  AUTH_RATE_LIMIT_BURST: 1,
  MAGIC_LINK_PER_HOUR: 3, // magic_link_email: 3 tokens, one back every 20 min
};

/**
 * Registers the contract suite. `keyPrefix` keeps one run's keys apart from another's (Redis is shared);
 * `close` runs after the suite and must release everything `backend` holds.
 */
export function rateLimitContract(
  label: string,
  backend: RateLimitBackend,
  keyPrefix: string,
  close: () => Promise<void>,
) {
  describe(`rate limit contract: ${label}`, () => {
    let clock: ManualClock;
    let limiters: RateLimiters;
    let n = 0;
    const freshKey = () => `${keyPrefix}k${++n}`;

    beforeEach(() => {
      clock = new ManualClock(Date.UTC(2026, 0, 1));
      limiters = new RateLimiters(backend, limiterTable(TEST_LIMITS), clock, createLogger("silent"));
    });
    afterAll(close);

    it("allows a full bucket of requests, then refuses with 429 and Retry-After", async () => {
      const key = freshKey();
      for (let i = 0; i < 8; i++) await limiters.check("api", key);
      const err = await rejection(limiters.check("api", key));
      expect(err.code).toBe("rate_limited");
      expect(err.status).toBe(429);
      expect(err.headers).toEqual({
        "Retry-After": "10",
        "RateLimit-Limit": "8",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "80",
      });
      expect(err.details).toEqual({ retry_after: 10 });
    });

    it("gives a token back each refill interval, and not a millisecond earlier", async () => {
      const key = freshKey();
      for (let i = 0; i < 4; i++) await limiters.check("signin", key);
      expect((await rejection(limiters.check("signin", key))).headers["Retry-After"]).toBe("20");

      clock.advance(19_999);
      // One millisecond to go still rounds up to a whole second: Retry-After is never 0.
      expect((await rejection(limiters.check("signin", key))).headers["Retry-After"]).toBe("1");

      clock.advance(1);
      expect((await limiters.check("signin", key))["RateLimit-Remaining"]).toBe("0");
      expect((await rejection(limiters.check("signin", key))).code).toBe("rate_limited");
    });

    it("refills up to capacity and no further", async () => {
      const key = freshKey();
      for (let i = 0; i < 8; i++) await limiters.check("api", key);
      clock.advance(60 * 60 * 1000);
      for (let i = 0; i < 8; i++) await limiters.check("api", key);
      expect((await rejection(limiters.check("api", key))).code).toBe("rate_limited");
    });

    it("keeps each key's bucket apart", async () => {
      const a = freshKey();
      const b = freshKey();
      for (let i = 0; i < 4; i++) await limiters.check("signin", a);
      await rejection(limiters.check("signin", a));
      expect((await limiters.check("signin", b))["RateLimit-Remaining"]).toBe("3");
    });

    it("keeps each limiter's bucket apart for the same key", async () => {
      const key = freshKey();
      for (let i = 0; i < 4; i++) await limiters.check("signin", key);
      await rejection(limiters.check("signin", key));
      expect((await limiters.check("signup", key))["RateLimit-Remaining"]).toBe("3");
      expect((await limiters.check("refresh", key))["RateLimit-Remaining"]).toBe("3");
      expect((await limiters.check("api", key))["RateLimit-Remaining"]).toBe("7");
    });

    it("reports limit, remaining and seconds until full in the RateLimit headers", async () => {
      const key = freshKey();
      expect(await limiters.check("api", key)).toEqual({
        "RateLimit-Limit": "8",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "10",
      });
      await limiters.check("api", key);
      expect(await limiters.check("api", key)).toEqual({
        "RateLimit-Limit": "8",
        "RateLimit-Remaining": "5",
        "RateLimit-Reset": "30",
      });
      // Half a token back: 5.5, minus this request's one leaves 4.5 (4 whole), 3.5 tokens = 35 s from full.
      clock.advance(5_000);
      expect(await limiters.check("api", key)).toEqual({
        "RateLimit-Limit": "8",
        "RateLimit-Remaining": "4",
        "RateLimit-Reset": "35",
      });
    });

    it("counts the magic-link email budget per hour", async () => {
      const key = freshKey();
      for (let i = 0; i < 3; i++) await limiters.check("magic_link_email", key);
      const err = await rejection(limiters.check("magic_link_email", key));
      expect(err.headers["Retry-After"]).toBe("1200");
      expect(err.headers["RateLimit-Reset"]).toBe("3600");
      clock.advance(20 * 60 * 1000);
      await limiters.check("magic_link_email", key);
    });
  });
}
