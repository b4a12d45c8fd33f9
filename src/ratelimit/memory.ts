// In-process token buckets: the backend when there is no Redis (a single server, development, tests).
// Limits are per process, so with several servers behind a balancer each one allows the full budget.

import type { RateLimitBackend, TakeResult } from "./index.ts";
import type { LimiterSpec } from "./limits.ts";

interface Bucket {
  tokens: number;
  updatedAt: number;
  /** When the bucket will be full again: from then on it is indistinguishable from no bucket at all. */
  fullAt: number;
}

export interface MemoryBackendOptions {
  /** Hard cap on buckets held; beyond it the least recently used are dropped. */
  maxBuckets?: number;
  /** How often (in the clock's time, checked on each take) full buckets are dropped. */
  sweepIntervalMs?: number;
}

// Float refills can land a hair under a whole token; without slack a client told "retry in 10 s" could be
// refused again at exactly 10 s, or told 11 s when 10 s was meant.
const EPSILON = 1e-9;
const ceilMs = (ms: number) => Math.ceil(ms - 1e-6);

/** Refill lazily from `now`, then take one token if there is one. Pure, so the Redis script can mirror it. */
export function takeToken(
  spec: LimiterSpec,
  bucket: Bucket | undefined,
  now: number,
): { bucket: Bucket; result: TakeResult } {
  // Working in "ms per token" keeps common rates (60/min = 1000 ms) exact in floating point.
  const msPerToken = 1000 / spec.refillPerSecond;
  let tokens = spec.capacity;
  let updatedAt = now;
  if (bucket) {
    // A clock that steps backwards must not mint tokens, nor rewind the bucket.
    const elapsed = Math.max(0, now - bucket.updatedAt);
    tokens = Math.min(spec.capacity, bucket.tokens + elapsed / msPerToken);
    updatedAt = Math.max(now, bucket.updatedAt);
  }
  const allowed = tokens >= 1 - EPSILON;
  if (allowed) tokens = Math.max(0, tokens - 1);
  const resetMs = ceilMs((spec.capacity - tokens) * msPerToken);
  return {
    bucket: { tokens, updatedAt, fullAt: updatedAt + resetMs },
    result: {
      allowed,
      remaining: Math.floor(tokens + EPSILON),
      resetMs,
      retryAfterMs: allowed ? 0 : ceilMs((1 - tokens) * msPerToken),
    },
  };
}

export class MemoryBackend implements RateLimitBackend {
  // Map iteration order is insertion order; re-inserting on every take makes the first entries the least
  // recently used, which is what eviction wants.
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxBuckets: number;
  private readonly sweepIntervalMs: number;
  private lastSweep: number | undefined;

  constructor(opts: MemoryBackendOptions = {}) {
    this.maxBuckets = opts.maxBuckets ?? 100_000;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 60_000;
    if (!Number.isInteger(this.maxBuckets) || this.maxBuckets < 1) {
      throw new Error(`MemoryBackend: maxBuckets must be an integer >= 1 (got ${opts.maxBuckets})`);
    }
    if (!(this.sweepIntervalMs > 0)) {
      throw new Error(`MemoryBackend: sweepIntervalMs must be > 0 (got ${opts.sweepIntervalMs})`);
    }
  }

  /** How many buckets are held (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  async take(spec: LimiterSpec, key: string, now: number): Promise<TakeResult> {
    // Sweeping on the request path rather than on a timer: nothing keeps the process alive, and the sweep
    // follows the injected clock.
    this.lastSweep ??= now;
    if (now - this.lastSweep >= this.sweepIntervalMs) this.sweep(now);

    // Limiter names contain no ":", so name + ":" + key cannot collide across limiters.
    const id = `${spec.name}:${key}`;
    const { bucket, result } = takeToken(spec, this.buckets.get(id), now);
    this.buckets.delete(id);
    this.buckets.set(id, bucket);
    if (this.buckets.size > this.maxBuckets) this.shrink(now);
    return result;
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }

  /** Drop buckets that have refilled: a missing bucket already means "full". */
  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [id, bucket] of this.buckets) {
      if (bucket.fullAt <= now) this.buckets.delete(id);
    }
  }

  private shrink(now: number): void {
    this.sweep(now);
    if (this.buckets.size <= this.maxBuckets) return;
    // A flood of distinct keys would otherwise grow without bound. Dropping the least recently used resets
    // those keys' budgets, which is the price of bounded memory; shrinking to 90% keeps this O(n) pass rare.
    const target = Math.floor(this.maxBuckets * 0.9);
    for (const id of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(id);
    }
  }
}
