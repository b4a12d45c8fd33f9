// Seeded test data for benchmarks, so two runs ask for the same pages of the same text.

/** A mulberry32 generator: `next()` is uniform in [0, 1), `int(lo, hi)` uniform in [lo, hi]. */
export function seeded(seed: number) {
  let s = seed | 0;
  const next = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return { next, int };
}

const WORDS = (
  "the a to and of in is it you that for on was with are be this have not but at we they can just so " +
  "meeting deploy tomorrow lunch review branch merge release ticket server client message sync offline " +
  "coffee later thanks sure maybe tonight weekend build failing green fixed again ship draft doc link " +
  "call minutes agenda notes budget design screen mobile desktop retry latency cache index query page"
).split(" ");

/** Chat-like text of 2 to 30 common words. */
export const sentence = (int: (lo: number, hi: number) => number) =>
  Array.from({ length: int(2, 30) }, () => WORDS[int(0, WORDS.length - 1)]).join(" ");
