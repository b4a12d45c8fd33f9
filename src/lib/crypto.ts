// Hashing for stored secrets. Passwords: argon2id (Bun.password) at the configured cost. Tokens: SHA-256,
// since they are 256-bit random values and a slow hash would buy nothing but latency.

/** argon2id's cost: memory in KiB and passes (config PASSWORD_HASH_MEMORY_KIB, PASSWORD_HASH_TIME). */
export interface PasswordCost {
  PASSWORD_HASH_MEMORY_KIB: number;
  PASSWORD_HASH_TIME: number;
}

export function sha256(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("base64url");
}

export function hashPassword(password: string, cost: PasswordCost): Promise<string> {
  return Bun.password.hash(password, {
    algorithm: "argon2id",
    memoryCost: cost.PASSWORD_HASH_MEMORY_KIB,
    timeCost: cost.PASSWORD_HASH_TIME,
  });
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return Bun.password.verify(password, hash);
}

/**
 * Whether a stored hash was made with another algorithm or cost than `cost` (the PHC string names them:
 * `$argon2id$v=19$m=65536,t=2,p=1$…`); sign-in then hashes the password again, so a changed cost reaches
 * every account that signs in.
 */
export function needsRehash(hash: string, cost: PasswordCost): boolean {
  const params = /^\$argon2id\$v=\d+\$m=(\d+),t=(\d+),p=\d+\$/.exec(hash);
  return (
    params === null ||
    Number(params[1]) !== cost.PASSWORD_HASH_MEMORY_KIB ||
    Number(params[2]) !== cost.PASSWORD_HASH_TIME
  );
}
