// Whether the session behind a realtime connection is over, decided in one place for the socket's close,
// a refused token refresh and the session check alike: then no reconnect can work, and the connection ends.

import { CLOSE } from "../realtime/frames.ts";
import { ParleyError } from "./errors.ts";

/** What may say that the session is over: the socket's close, or a failed token refresh or session check. */
export type Cause = { close: number; reason: string } | { error: unknown };

/** Codes that say the session is over: no token will be given for it again. */
const SESSION_OVER = new Set(["session_revoked", "refresh_token_reused", "invalid_token", "unauthorized"]);

/**
 * Whether the session is over, so that trying again cannot work: a terminal close (4500-4999), or a
 * refusal with a 401 or one of the codes above. Answers the error calls then fail with, and the code and
 * reason of the final close event (for a refusal over REST, the close code that stands for it).
 */
export function sessionEnd(cause: Cause): { error: ParleyError; code: number; reason: string } | null {
  if ("close" in cause) {
    const { close: code, reason } = cause;
    if (code < 4500 || code > 4999) return null;
    const error =
      code === CLOSE.sessionRevoked
        ? new ParleyError("session_revoked", reason || "session revoked")
        : code === CLOSE.forbidden
          ? new ParleyError("forbidden", reason || "forbidden")
          : new ParleyError("unauthorized", reason || `refused (${code})`);
    return { error, code, reason };
  }
  const { error } = cause;
  if (!(error instanceof ParleyError && (error.status === 401 || SESSION_OVER.has(error.code)))) return null;
  const code =
    error.code === "session_revoked" || error.code === "refresh_token_reused"
      ? CLOSE.sessionRevoked
      : error.code === "forbidden"
        ? CLOSE.forbidden
        : CLOSE.unauthorized;
  return { error, code, reason: error.message };
}
