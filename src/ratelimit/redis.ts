// Token buckets in Redis, so every server process shares one budget per key. One Lua script refills and
// takes atomically; the time comes from the caller's clock, so tests drive it and servers agree on the formula.

import type { Redis } from "ioredis";
import type { Logger } from "../lib/logger.ts";
import { closeRedis, openRedis } from "../lib/redis.ts";
import { within } from "../lib/within.ts";
import type { RateLimitBackend, TakeResult } from "./index.ts";
import type { LimiterSpec } from "./limits.ts";

export const DEFAULT_KEY_PREFIX = "parley:rl:";

// Mirrors takeToken in memory.ts: both backends must answer the same questions the same way.
// KEYS[1] = bucket hash {tokens, ts}; ARGV = capacity, ms per token, now (ms).
// Returns {allowed 0|1, remaining, ms until full, ms until a token is available (0 when allowed)}.
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local msPerToken = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local eps = 1e-9
local function ceilMs(ms)
  return math.ceil(ms - 1e-6)
end
local state = redis.call("HMGET", KEYS[1], "tokens", "ts")
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
else
  tokens = math.min(capacity, tokens + math.max(0, now - ts) / msPerToken)
  ts = math.max(now, ts)
end
local allowed = 0
if tokens >= 1 - eps then
  tokens = math.max(0, tokens - 1)
  allowed = 1
end
local reset = ceilMs((capacity - tokens) * msPerToken)
local retry = 0
if allowed == 0 then
  retry = ceilMs((1 - tokens) * msPerToken)
end
redis.call("HSET", KEYS[1], "tokens", tokens, "ts", ts)
-- Once full, a bucket equals no bucket: let Redis forget it then.
redis.call("PEXPIRE", KEYS[1], math.max(reset, 1))
return {allowed, math.floor(tokens + eps), reset, retry}
`;

const COMMAND = "parleyRateLimitTake";

/**
 * How long a request may wait for the client's first connection. Without it every limiter would fail (and
 * the auth ones refuse) for the first few milliseconds after boot; after that first attempt, a down Redis
 * fails at once.
 */
const FIRST_CONNECT_WAIT_MS = 1000;

// defineCommand adds a method that ioredis' types cannot know about; this type is the one place that says so.
type ScriptedRedis = Redis & {
  [COMMAND](key: string, capacity: number, msPerToken: number, now: number): Promise<unknown>;
};

export interface RedisBackendOptions {
  /** Prepended to "<name>:<key>"; lets two deployments share one Redis without sharing budgets. */
  keyPrefix?: string;
}

/** A client for rate limiting: when Redis is down, commands fail at once instead of queueing. */
export function createRedisClient(url: string, logger: Logger): Redis {
  return openRedis(url, logger, "rate limit redis", {
    // A request must not wait on reconnects: the limiter's fail-open/closed policy decides what happens.
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // A Redis that accepts connections but stops answering must fail fast too.
    commandTimeout: 1000,
  });
}

export class RedisBackend implements RateLimitBackend {
  private readonly client: ScriptedRedis;
  private readonly keyPrefix: string;
  /** Pending until the first connection attempt ends, either way. */
  private firstConnect: Promise<void> | undefined;

  /** Takes ownership of `client`: close() closes it. */
  constructor(client: Redis, opts: RedisBackendOptions = {}) {
    this.keyPrefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX;
    // ioredis loads the script with EVALSHA and falls back to EVAL when Redis has not seen it yet.
    client.defineCommand(COMMAND, { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.client = client as ScriptedRedis;
    if (client.status !== "ready") this.firstConnect = this.firstAttempt(client);
  }

  private firstAttempt(client: Redis): Promise<void> {
    return new Promise<void>((resolve) => {
      const settle = () => {
        client.off("ready", settle);
        client.off("error", settle);
        client.off("end", settle);
        this.firstConnect = undefined;
        resolve();
      };
      client.on("ready", settle);
      client.on("error", settle);
      client.on("end", settle);
    });
  }

  /** The Redis key of a bucket, public so tests and operators can find it. */
  keyOf(spec: LimiterSpec, key: string): string {
    return `${this.keyPrefix}${spec.name}:${key}`;
  }

  async take(spec: LimiterSpec, key: string, now: number): Promise<TakeResult> {
    if (this.firstConnect) await within(this.firstConnect, FIRST_CONNECT_WAIT_MS, () => {});
    const reply = await this.client[COMMAND](
      this.keyOf(spec, key),
      spec.capacity,
      1000 / spec.refillPerSecond,
      now,
    );
    if (!Array.isArray(reply) || reply.length !== 4 || !reply.every((n) => typeof n === "number")) {
      throw new Error("rate limit redis: unexpected script reply");
    }
    const [allowed, remaining, resetMs, retryAfterMs] = reply as [number, number, number, number];
    return { allowed: allowed === 1, remaining, resetMs, retryAfterMs };
  }

  close(): Promise<void> {
    return closeRedis(this.client);
  }
}
