// Log redaction, the second line of defence: secrets under the known keys never reach a line, at the top
// level or one level down, and `headers` lose authorization and cookies.

import { expect, it } from "bun:test";
import { CENSOR, createLogger, redactSecrets, safePath } from "../../src/lib/logger.ts";

function capture() {
  const lines: string[] = [];
  const logger = createLogger("info", { write: (s: string) => void lines.push(s) });
  return { logger, lines, last: () => JSON.parse(lines.at(-1) as string) };
}

it("censors secrets at the top level and one level down, and leaves everything else", () => {
  const { logger, last, lines } = capture();
  logger.info(
    {
      password: "hunter2-top",
      token: "tok-top",
      access_token: "at-top",
      user: { id: "u1", password: "pw-nested", refresh_token: "rt-nested", name: "ann" },
      body: { current_password: "s3cr3t-cur", new_password: "s3cr3t-new", token: "tok-nested", keep: 1 },
      headers: { Authorization: "Bearer abc", cookie: "sid=1", "x-request-id": "r1" },
      req: { headers: { authorization: "Bearer def", accept: "*/*" } },
      count: 3,
    },
    "hello",
  );
  const line = last();
  expect(line).toMatchObject({
    msg: "hello",
    level: "info",
    password: CENSOR,
    token: CENSOR,
    access_token: CENSOR,
    user: { id: "u1", password: CENSOR, refresh_token: CENSOR, name: "ann" },
    body: { current_password: CENSOR, new_password: CENSOR, token: CENSOR, keep: 1 },
    headers: { Authorization: CENSOR, cookie: CENSOR, "x-request-id": "r1" },
    req: { headers: { authorization: CENSOR, accept: "*/*" } },
    count: 3,
  });
  const text = lines.join("");
  for (const secret of [
    "hunter2-top",
    "tok-top",
    "at-top",
    "pw-nested",
    "rt-nested",
    "s3cr3t-cur",
    "s3cr3t-new",
    "tok-nested",
    "Bearer",
    "sid=1",
  ])
    expect(text.includes(secret)).toBe(false);
});

it("never changes the caller's object, and copies only when something was censored", () => {
  const clean = { user: { id: "u1" }, path: "/x", list: [{ password: "in an array: not a log key" }] };
  expect(redactSecrets(clean)).toBe(clean);
  const dirty = { user: { id: "u1", password: "pw" }, other: { a: 1 } };
  const out = redactSecrets(dirty);
  expect(out).not.toBe(dirty);
  expect(dirty.user.password).toBe("pw");
  expect(out.other).toBe(dirty.other);
  expect(out.user).toEqual({ id: "u1", password: CENSOR });
});

it("still logs errors and messages without an object", () => {
  const { logger, last } = capture();
  logger.error({ err: new Error("boom") }, "failed");
  expect(last()).toMatchObject({ msg: "failed", err: { message: "boom", type: "Error" } });
  logger.warn("plain");
  expect(last()).toMatchObject({ msg: "plain", level: "warn" });
});

it("logs a URL's path without its query string", () => {
  expect(safePath("http://h:1/api/auth/me?access_token=abc")).toBe("/api/auth/me");
  expect(safePath("http://h/ws/u/s")).toBe("/ws/u/s");
});
