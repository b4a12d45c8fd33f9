// An HDR-style latency histogram: log-linear buckets at microsecond resolution (under 1% relative error),
// mergeable across load-generator processes by shipping its sparse bucket counts as JSON.

import type { Percentiles } from "./types.ts";

/** 2^SUB_BITS buckets per power of two above the linear range: relative error below 2^-(SUB_BITS-1). */
const SUB_BITS = 8;
const SUB = 1 << SUB_BITS;
const HALF = SUB >> 1;

/** Bucket index of a value in microseconds: exact below SUB, then HALF buckets per doubling. */
function indexOf(us: number): number {
  if (us < SUB) return us;
  const shift = 31 - Math.clz32(us) - (SUB_BITS - 1);
  return SUB + (shift - 1) * HALF + ((us >>> shift) - HALF);
}

/** The highest value a bucket holds, so percentiles never understate. */
function highestIn(index: number): number {
  if (index < SUB) return index;
  const shift = Math.floor((index - SUB) / HALF) + 1;
  const sub = ((index - SUB) % HALF) + HALF;
  return ((sub + 1) << shift) - 1;
}

export interface SerializedHistogram {
  /** [bucket index, count] pairs. */
  buckets: Array<[number, number]>;
  count: number;
  minUs: number;
  maxUs: number;
  sumUs: number;
}

export class Histogram {
  private counts = new Map<number, number>();
  count = 0;
  minUs = Number.POSITIVE_INFINITY;
  maxUs = 0;
  sumUs = 0;

  /** Records a latency in milliseconds (negative values, from clock skew, count as 0). */
  record(ms: number): void {
    // Values past ~2^31 µs (35 minutes) are clamped: a bench never waits that long.
    const us = Math.min(2 ** 31 - 1, Math.max(0, Math.round(ms * 1000)));
    const i = indexOf(us);
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1);
    this.count++;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(other: Histogram | SerializedHistogram): void {
    const h = other instanceof Histogram ? other.toJSON() : other;
    for (const [i, c] of h.buckets) this.counts.set(i, (this.counts.get(i) ?? 0) + c);
    this.count += h.count;
    this.sumUs += h.sumUs;
    if (h.count > 0) {
      this.minUs = Math.min(this.minUs, h.minUs);
      this.maxUs = Math.max(this.maxUs, h.maxUs);
    }
  }

  /** The value in ms at or below which `p` percent of the samples fall (bucket upper bound, capped at max). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (const i of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(i) as number;
      if (seen >= rank) return Math.min(highestIn(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  summary(): Percentiles {
    const r = (n: number) => Math.round(n * 1000) / 1000;
    return {
      count: this.count,
      p50: r(this.percentile(50)),
      p90: r(this.percentile(90)),
      p99: r(this.percentile(99)),
      p999: r(this.percentile(99.9)),
      max: r(this.maxUs / 1000),
    };
  }

  toJSON(): SerializedHistogram {
    return {
      buckets: [...this.counts.entries()],
      count: this.count,
      minUs: this.count ? this.minUs : 0,
      maxUs: this.maxUs,
      sumUs: this.sumUs,
    };
  }

  static from(h: SerializedHistogram): Histogram {
    const out = new Histogram();
    out.merge(h);
    return out;
  }
}
