// Identifiers: time-ordered, URL-safe ids for records and opaque high-entropy secrets for tokens.

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase

/** 20-char id: 48-bit millisecond time + 52 random bits; sorts by creation time. */
export function newId(now = Date.now()): string {
  let out = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  const rnd = crypto.getRandomValues(new Uint8Array(10));
  for (const b of rnd) out += ALPHABET[b % 32];
  return out;
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
