// Seeded randomness and hostile values for the fuzz tests (the gateway's frames, the REST routes): the same
// sequence on every machine for one seed, so a failure replays.

/** mulberry32: small, fast and the same on every machine. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  /** Mostly small, sometimes large: lengths where parsers break. */
  size(max: number): number {
    return this.chance(0.8) ? this.int(64) : this.int(max);
  }
}

export const NUMBERS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  0,
  -1,
  0.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 63),
  2 ** 64,
  1e308,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
];
export const STRINGS = [
  "",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff",
  "x\ud83d",
  "\ude00x",
  "\ud83d\ude00",
  "\ufffe\uffff",
  "\u202e",
  "__proto__",
  "constructor",
  "toString",
  "💩".repeat(40),
  "a".repeat(65),
  "a".repeat(20_000),
  "' OR 1=1 --",
  "%s%n",
  "\r\n\t",
  "../../etc/passwd",
];
export function randomString(rng: Rng): string {
  if (rng.chance(0.3)) return rng.pick(STRINGS);
  let s = "";
  for (let i = rng.size(200); i > 0; i--) {
    s += rng.chance(0.8) ? String.fromCharCode(32 + rng.int(95)) : String.fromCharCode(rng.int(0x10000));
  }
  return s;
}
