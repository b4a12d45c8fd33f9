// Structured JSON logs (pino). Redaction is the second line of defence: call sites never pass secrets,
// and anything that slips through under these paths is replaced.

import pino, { type Logger } from "pino";

export type { Logger };

export const REDACT_PATHS = [
  "password",
  "*.password",
  "*.current_password",
  "*.new_password",
  "token",
  "*.token",
  "*.access_token",
  "*.refresh_token",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "parley" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
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
