// The SDK's one error type: a stable `code` (the server's REST and WebSocket error codes, plus a few of
// the SDK's own) and the HTTP status when there was one. Callers branch on `code`, never on message text.

/**
 * Codes the SDK raises itself, next to the server's codes (unauthorized, not_found, rate_limited, ...): the
 * last three come as `error` events only (README, Client SDK: Errors).
 */
export type ClientErrorCode =
  | "timeout"
  | "network"
  | "closed"
  | "bad_response"
  | "bad_request"
  | "bad_frame"
  | "handler_failed"
  | "resync_unavailable";

export class ParleyError extends Error {
  readonly code: string;
  /** The HTTP status of a REST error; 0 for errors from the socket or the SDK itself. */
  readonly status: number;
  /**
   * Extra fields of the error body, e.g. the `field` of a validation error; `retry_after` (seconds) also
   * when only the answer's Retry-After header says it (account_locked).
   */
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, status = 0, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "ParleyError";
    this.code = code;
    this.status = status;
    this.details = details;
  }
}
