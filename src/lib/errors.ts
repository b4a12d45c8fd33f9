// The one table of error codes: every REST error body and WebSocket error frame carries one of these.
// Clients branch on `code`, never on message text.

/** What a caught value says, for a log line (never its stack). */
export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** SQLite result codes of a store that cannot write or read now (disk full, I/O, locked, read-only). */
const STORAGE_DOWN = /^SQLITE_(FULL|IOERR|BUSY|LOCKED|READONLY|CANTOPEN|NOMEM|PROTOCOL)/;
/** The MongoDB driver's errors for a server out of reach (by name: lib/ does not import the driver). */
const MONGO_DOWN = new Set([
  "MongoNetworkError",
  "MongoNetworkTimeoutError",
  "MongoServerSelectionError",
  "MongoNotConnectedError",
  "MongoTopologyClosedError",
]);

/**
 * A store error that says the storage is out of service for now rather than that the request or the code
 * is wrong: answered 503 `unavailable` with Retry-After, logged in one line.
 */
export function storageUnavailable(err: unknown): string | null {
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && STORAGE_DOWN.test(code)) return code;
  return MONGO_DOWN.has(err.name) ? err.name : null;
}

export const ERRORS = {
  bad_request: 400,
  validation_failed: 422,
  weak_password: 422,
  dm_participants_fixed: 422,
  conversation_encrypted: 422,
  unauthorized: 401,
  token_expired: 401,
  session_revoked: 401,
  invalid_credentials: 401,
  refresh_token_reused: 401,
  invalid_token: 401,
  forbidden: 403,
  https_required: 403,
  magic_link_required: 403,
  not_found: 404,
  email_taken: 409,
  username_taken: 409,
  already_member: 409,
  already_verified: 409,
  last_owner: 409,
  message_deleted: 409,
  reaction_limit: 409,
  group_full: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  account_locked: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers (Retry-After, RateLimit-*). */
  readonly headers: Record<string, string>;
  /** Extra fields for the error body, e.g. the offending field of a validation error. */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { headers?: Record<string, string>; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = "AppError";
    this.code = code;
    this.status = ERRORS[code];
    this.headers = opts.headers ?? {};
    this.details = opts.details;
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string } & Record<string, unknown>;
}

export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>): ErrorBody {
  return { error: { code, message, ...details } };
}

/** Shorthands keep call sites short and the codes greppable. */
export const notFound = (what = "resource") => new AppError("not_found", `${what} not found`);
export const forbidden = (message = "not allowed") => new AppError("forbidden", message);
export const validation = (field: string, message: string) =>
  new AppError("validation_failed", `${field}: ${message}`, { details: { field } });
