// Rate limiting for routes and sockets: RateLimiters.check(name, key) spends one token from a named limiter
// and either returns the RateLimit headers or throws the AppError the client should see.

import type { Config } from "../config.ts";
import type { Clock } from "../lib/clock.ts";
import { AppError, errorText } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import type { Counter } from "../lib/metrics.ts";
import type { Metrics } from "../modules/metrics/service.ts";
import { checkTable, type LimitConfig, type LimiterName, type LimiterSpec, limiterTable } from "./limits.ts";
import { MemoryBackend } from "./memory.ts";
import { createRedisClient, RedisBackend } from "./redis.ts";

export type { LimitConfig, LimiterName, LimiterSpec } from "./limits.ts";
export { LIMITER_NAMES, limiterTable } from "./limits.ts";
export { MemoryBackend } from "./memory.ts";
export { createRedisClient, RedisBackend } from "./redis.ts";

export interface TakeResult {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
  /** Milliseconds until one token is available; 0 when allowed. */
  retryAfterMs: number;
}

/** Where buckets live. Every backend runs the same contract suite (test/ratelimit). */
export interface RateLimitBackend {
  take(spec: LimiterSpec, key: string, now: number): Promise<TakeResult>;
  close(): Promise<void>;
}

/** What a client is told to wait when a fail-closed limiter cannot reach its store. */
const UNAVAILABLE_RETRY_AFTER_S = 5;
/** A Redis outage would otherwise log one warning per request. */
const WARN_EVERY_MS = 10_000;

const seconds = (ms: number) => Math.ceil(ms / 1000);

export class RateLimiters {
  private readonly lastWarnAt = new Map<LimiterName, number>();

  constructor(
    readonly backend: RateLimitBackend,
    private readonly table: Record<LimiterName, LimiterSpec>,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** Counts refusals by limiter name (metrics). */
    private readonly refused?: Counter,
  ) {
    checkTable(table);
  }

  spec(name: LimiterName): LimiterSpec {
    return this.table[name];
  }

  /**
   * Spend one token of `name` for `key` (an IP, a user id, a normalised email). Returns the RateLimit-*
   * headers to send, or throws rate_limited (429) with Retry-After; if the store is down, a fail-open
   * limiter returns no headers and a fail-closed one throws unavailable (503).
   */
  async check(name: LimiterName, key: string): Promise<Record<string, string>> {
    const spec = this.table[name];
    let result: TakeResult;
    try {
      result = await this.backend.take(spec, key, this.clock.now());
    } catch (err) {
      return this.onBackendError(spec, err);
    }
    const headers: Record<string, string> = {
      "RateLimit-Limit": String(spec.capacity),
      "RateLimit-Remaining": String(result.remaining),
      "RateLimit-Reset": String(seconds(result.resetMs)),
    };
    if (result.allowed) return headers;
    this.refused?.inc([name]);
    // Retry-After 0 would invite an immediate retry that is refused again.
    const retryAfter = Math.max(1, seconds(result.retryAfterMs));
    throw new AppError("rate_limited", `too many requests; retry in ${retryAfter} s`, {
      headers: { ...headers, "Retry-After": String(retryAfter) },
      details: { retry_after: retryAfter },
    });
  }

  close(): Promise<void> {
    return this.backend.close();
  }

  private onBackendError(spec: LimiterSpec, err: unknown): Record<string, string> {
    // The key is an IP or an email: personal data that a log line does not need.
    const now = this.clock.now();
    const last = this.lastWarnAt.get(spec.name);
    if (last === undefined || now - last >= WARN_EVERY_MS || now < last) {
      this.lastWarnAt.set(spec.name, now);
      this.logger.warn(
        {
          limiter: spec.name,
          failOpen: spec.failOpen,
          err: errorText(err),
        },
        spec.failOpen
          ? "rate limit store unavailable; allowing the request (limiter fails open)"
          : "rate limit store unavailable; refusing the request (limiter fails closed)",
      );
    }
    if (spec.failOpen) return {};
    throw new AppError("unavailable", "temporarily unavailable; try again shortly", {
      headers: { "Retry-After": String(UNAVAILABLE_RETRY_AFTER_S) },
      details: { retry_after: UNAVAILABLE_RETRY_AFTER_S },
    });
  }
}

/** Redis when REDIS_URL is set (shared by every server process), in-process buckets otherwise. */
export function createRateLimiters(
  config: LimitConfig & Pick<Config, "REDIS_URL"> & Partial<Pick<Config, "REDIS_PREFIX">>,
  clock: Clock,
  logger: Logger,
  metrics?: Pick<Metrics, "rateLimited">,
): RateLimiters {
  const backend = config.REDIS_URL
    ? new RedisBackend(createRedisClient(config.REDIS_URL, logger), {
        keyPrefix: `${config.REDIS_PREFIX ?? "parley:"}rl:`,
      })
    : new MemoryBackend();
  return new RateLimiters(backend, limiterTable(config), clock, logger, metrics?.rateLimited);
}
