// Structured JSON logs (pino). Redaction is the second line of defence: call sites never pass secrets,
// and anything that slips through under the keys below is replaced.

import pino, { type Logger } from "pino";

export type { Logger };

/** Keys whose values never reach a log line, at the top level of a log object or one level down. */
const SECRET_KEYS = new Set([
  "password",
  "current_password",
  "new_password",
  "token",
  "access_token",
  "refresh_token",
]);
/** Header names never logged, under a `headers` object at the top level or one level down. */
const SECRET_HEADERS = new Set(["authorization", "cookie"]);
export const CENSOR = "[redacted]";

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Error);

/** `headers` with the secret ones censored; the same object when there are none. */
function censorHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(headers)) {
    if (SECRET_HEADERS.has(key.toLowerCase())) {
      out ??= { ...headers };
      out[key] = CENSOR;
    }
  }
  return out ?? headers;
}

/** An object with secret keys censored and `headers` cleaned, to `depth` more levels of objects below it. */
function censor(obj: Record<string, unknown>, depth: number): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    let next = value;
    if (SECRET_KEYS.has(key)) next = CENSOR;
    else if (isPlainObject(value)) {
      if (key === "headers") next = censorHeaders(value);
      else if (depth > 0) next = censor(value, depth - 1);
    }
    if (next !== value) {
      out ??= { ...obj };
      out[key] = next;
    }
  }
  return out ?? obj;
}

/**
 * A log object with secrets censored, at the top level and one level down (and `headers` at either):
 * a copy when something was censored, the same object otherwise. The caller's object is never changed.
 */
export function redactSecrets(obj: Record<string, unknown>): Record<string, unknown> {
  return censor(obj, 1);
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "parley" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Our own redaction rather than pino's `redact`, which parsed its paths again on every line
      // (~20 µs a request in the bench's rest scenario); this one only walks two levels of keys.
      formatters: { level: (label) => ({ level: label }), log: redactSecrets },
    },
    destination,
  );
}

/** The path of a URL without its query string: query strings may carry tokens (?access_token=, ?token=). */
export function safePath(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const q = url.indexOf("?", start);
  return q === -1 ? url.slice(start) : url.slice(start, q);
}
