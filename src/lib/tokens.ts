// Access tokens: short-lived JWTs (sub = user, sid = session) signed with SECRET_KEY; the algorithm is
// pinned at verification so a token cannot choose its own. jose is used directly (not @elysiajs/jwt)
// because callers must tell an expired token from a forged one, and services must not need a Context.

import { errors, jwtVerify, SignJWT } from "jose";
import { AppError } from "./errors.ts";

export interface AccessClaims {
  sub: string;
  sid: string;
  iat: number;
  exp: number;
}

export interface TokenSigner {
  readonly ttlSeconds: number;
  sign(userId: string, sessionId: string, nowMs: number): Promise<string>;
  /** Throws AppError unauthorized / token_expired. */
  verify(token: string, nowMs: number): Promise<AccessClaims>;
}

export const ISSUER = "parley";
export const AUDIENCE = "parley-api";

/** Tokens verified recently, by their exact text (a client repeats its token on every request); ~6 MiB at most. */
const VERIFIED_MAX = 10_000;

export function createTokenSigner(opts: {
  secret: string;
  algorithm: "HS256" | "HS384" | "HS512";
  ttlMinutes: number;
}): TokenSigner {
  if (!opts.secret) throw new Error("createTokenSigner: secret is empty");
  // Imported once: given the secret's bytes, jose imports them for every signature and check (~10–20 µs
  // of the ~60–80 a check costs here).
  const key = crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(opts.secret),
    { name: "HMAC", hash: `SHA-${opts.algorithm.slice(2)}` },
    false,
    ["sign", "verify"],
  );
  const ttlSeconds = opts.ttlMinutes * 60;
  // The same text verified once needs no second HMAC: only its expiry moves with the clock, and that is
  // checked on every use. (Revoked sessions are refused by the session check, not here.)
  const verified = new Map<string, AccessClaims>();
  return {
    ttlSeconds,
    async sign(userId, sessionId, nowMs) {
      const iat = Math.floor(nowMs / 1000);
      return new SignJWT({ sid: sessionId })
        .setProtectedHeader({ alg: opts.algorithm, typ: "JWT" })
        .setSubject(userId)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(iat)
        .setExpirationTime(iat + ttlSeconds)
        .sign(await key);
    },
    async verify(token, nowMs) {
      const known = verified.get(token);
      if (known) {
        // As jose decides it: expired once exp <= now, in whole seconds.
        if (known.exp > Math.floor(nowMs / 1000)) return known;
        verified.delete(token);
      }
      try {
        const { payload } = await jwtVerify(token, await key, {
          algorithms: [opts.algorithm],
          issuer: ISSUER,
          audience: AUDIENCE,
          currentDate: new Date(nowMs),
          requiredClaims: ["sub", "sid", "iat", "exp"],
        });
        if (typeof payload.sub !== "string" || typeof payload.sid !== "string") {
          throw new AppError("unauthorized", "invalid access token");
        }
        const claims = Object.freeze(payload) as unknown as AccessClaims;
        if (verified.size >= VERIFIED_MAX) verified.clear();
        verified.set(token, claims);
        return claims;
      } catch (err) {
        if (err instanceof AppError) throw err;
        if (err instanceof errors.JWTExpired) throw new AppError("token_expired", "access token expired");
        throw new AppError("unauthorized", "invalid access token");
      }
    },
  };
}
