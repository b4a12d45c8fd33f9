// Hashing for stored secrets. Passwords: argon2id (Bun.password). Tokens: SHA-256, since they are
// 256-bit random values and a slow hash would buy nothing but latency.

export function sha256(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("base64url");
}

export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id" });
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return Bun.password.verify(password, hash);
}
