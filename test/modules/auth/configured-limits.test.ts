// Auth limits at values other than their defaults, and at the largest value config takes: a setting read
// nowhere would pass a test at its default, and one whose largest value breaks the route it limits would
// turn a tuning into an outage.

import { afterEach, describe, expect, it } from "bun:test";
import { call, type Harness, harness, signup } from "../../helpers.ts";

const MINUTE = 60_000;

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
