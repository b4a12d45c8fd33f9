// Auth limits at values other than their defaults, and at the largest value config takes: a setting read
// nowhere would pass a test at its default, and one whose largest value breaks the route it limits would
// turn a tuning into an outage.

import { afterEach, describe, expect, it } from "bun:test";
import { call, type Harness, harness, signup } from "../../helpers.ts";

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("LOCKOUT_MINUTES", () => {
  it("locks an account for the largest LOCKOUT_MINUTES config takes (a week), answering 429, never 500", async () => {
    h = await harness({ LOCKOUT_THRESHOLD: "2", LOCKOUT_MINUTES: "10080" });
    const user = await signup(h.app);
    const attempt = (password: string) =>
      call(h!.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    expect((await attempt("wrong password here")).status).toBe(401);
    expect((await attempt("wrong password here")).status).toBe(401);
    const locked = await attempt(user.password);
    expect([locked.status, locked.body.error?.code]).toEqual([429, "account_locked"]);
    expect(Number(locked.headers.get("retry-after"))).toBe(10080 * 60);
    h.clock.advance(10080 * MINUTE - 1000);
    expect((await attempt(user.password)).status).toBe(429);
    h.clock.advance(2000);
    expect((await attempt(user.password)).status).toBe(200);
  });
});

describe("ACCESS_TOKEN_EXPIRE_MINUTES", () => {
  it("gives access tokens ACCESS_TOKEN_EXPIRE_MINUTES (2): taken at 1m59s, refused token_expired at 2m01s", async () => {
    h = await harness({ ACCESS_TOKEN_EXPIRE_MINUTES: "2" });
    const user = await signup(h.app);
    expect(user.expires_in).toBe(120);
    const me = () => call(h!.app, "GET", "/api/auth/me", { token: user.token });
    h.clock.advance(2 * MINUTE - 1000);
    expect((await me()).status).toBe(200);
    h.clock.advance(2000);
    const expired = await me();
    expect([expired.status, expired.body.error?.code]).toEqual([401, "token_expired"]);
  });
});

describe("SESSION_MAX_DAYS", () => {
  it("ends a device session at SESSION_MAX_DAYS (3), however recently its refresh token was rotated", async () => {
    h = await harness({ SESSION_MAX_DAYS: "3" });
    const user = await signup(h.app);
    const refresh = (refresh_token: string) =>
      call(h!.app, "POST", "/api/auth/refresh", { body: { refresh_token } });
    h.clock.advance(3 * DAY - 1000);
    const rotated = await refresh(user.refresh_token);
    expect(rotated.status).toBe(200);
    // REFRESH_TOKEN_EXPIRE_DAYS (7) would keep the new token for a week: the session's end comes first.
    h.clock.advance(2000);
    const ended = await refresh(rotated.body.refresh_token);
    expect([ended.status, ended.body.error?.code]).toEqual([401, "token_expired"]);
  });
});

describe("RATE_LIMIT_BURST", () => {
  it("lets a user make RATE_LIMIT_PER_MINUTE (2) + RATE_LIMIT_BURST (3) calls at once, and refuses the next", async () => {
    h = await harness({ RATE_LIMIT_PER_MINUTE: "2", RATE_LIMIT_BURST: "3" });
    const user = await signup(h.app);
    const me = () => call(h!.app, "GET", "/api/auth/me", { token: user.token });
    for (let i = 0; i < 5; i++) {
      const res = await me();
      expect([res.status, res.headers.get("ratelimit-limit")]).toEqual([200, "5"]);
    }
    const refused = await me();
    expect([refused.status, refused.body.error?.code]).toEqual([429, "rate_limited"]);
    // Refilled at 2 a minute: one more after 30 seconds.
    h.clock.advance(30_000);
    expect((await me()).status).toBe(200);
    expect((await me()).status).toBe(429);
  });
});
