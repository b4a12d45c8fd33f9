// Identifiers: time-ordered, URL-safe ids for records and opaque high-entropy secrets for tokens.

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase

const CODES = Array.from(ALPHABET, (c) => c.charCodeAt(0));

// An id is made for every message: the time part is built once per millisecond and the random part
// comes from a pool filled 4 KiB at a time, instead of one getRandomValues call per id.
let prefixMs = -1;
let prefix = "";
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** 20-char id: 48-bit millisecond time + 50 random bits; sorts by creation time. */
export function newId(now = Date.now()): string {
  if (now !== prefixMs) {
    let out = "";
    let t = now;
    for (let i = 0; i < 10; i++) {
      out = ALPHABET[t % 32] + out;
      t = Math.floor(t / 32);
    }
    prefix = out;
    prefixMs = now;
  }
  if (poolAt + 10 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += 10;
  const c = (i: number) => CODES[(pool[at + i] as number) & 31] as number;
  return prefix + String.fromCharCode(c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7), c(8), c(9));
}

export function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

/** An opaque secret of `bytes` random bytes (default 32 = 256 bits), base64url. */
export function newSecret(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export const ID_PATTERN = "^[0-9a-z]{20}$";
export const isId = (s: string) => /^[0-9a-z]{20}$/.test(s);
