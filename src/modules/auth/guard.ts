// The `auth` macro: a route that says `{ auth: true }` gets `userId` and `sessionId` from a valid access
// token of a live session, and is rate limited per user. The check runs at transform, before body
// validation, so a caller without a valid token learns nothing about a route's schema.

import { Elysia } from "elysia";
import type { Deps } from "../../deps.ts";
import { AppError } from "../../lib/errors.ts";
import { addressKey, countedCalls } from "../../plugins/context.ts";

export function bearerToken(header: string | null | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

interface Identity {
  userId: string;
  sessionId: string;
}

export function authGuard(deps: Pick<Deps, "signer" | "sessions" | "clock" | "limiters">) {
  const identities = new WeakMap<Request, Identity>();
  return new Elysia({ name: "parley.auth" }).macro({
    auth: {
      async transform(ctx) {
        const { request, set } = ctx;
        let claims: { sub: string; sid: string };
        try {
          const token = bearerToken(request.headers.get("authorization"));
          if (!token) throw new AppError("unauthorized", "missing bearer token");
          claims = await deps.signer.verify(token, deps.clock.now());
          const state = await deps.sessions.state(claims.sid, claims.sub);
          if (state === "revoked" || state === "missing")
            throw new AppError("session_revoked", "session revoked");
          if (state === "expired") throw new AppError("token_expired", "session expired; sign in again");
        } catch (err) {
          // A call whose token is no good is anonymous: limited per address (429 before its 401), so that
          // a made-up token is no way around the limit calls without one get (plugins/http.ts, which has
          // counted those already).
          if (!countedCalls.has(request)) {
            countedCalls.add(request);
            const { clientIp } = ctx as unknown as { clientIp: string };
            Object.assign(set.headers, await deps.limiters.check("api", addressKey(clientIp)));
          }
          throw err;
        }
        countedCalls.add(request);
        Object.assign(set.headers, await deps.limiters.check("api", `user:${claims.sub}`));
        identities.set(request, { userId: claims.sub, sessionId: claims.sid });
      },
      resolve({ request }) {
        const identity = identities.get(request);
        if (!identity) throw new AppError("unauthorized", "missing bearer token");
        return { userId: identity.userId, sessionId: identity.sessionId };
      },
    },
  });
}
