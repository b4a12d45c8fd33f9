// MAGIC_LINK_TTL_MINUTES, EMAIL_VERIFICATION_TTL_HOURS, REFRESH_TOKEN_EXPIRE_DAYS and LOCKOUT_MINUTES at
// values other than their defaults, each checked on both sides of its edge: a setting read nowhere would pass a test at the default.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, type Harness, harness, signup } from "../../helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

let h: Harness;
beforeAll(async () => {
  h = await harness({
    PUBLIC_URL: "https://chat.example.com",
    MAGIC_LINK_TTL_MINUTES: "3",
    EMAIL_VERIFICATION_TTL_HOURS: "5",
    REFRESH_TOKEN_EXPIRE_DAYS: "2",
    LOCKOUT_THRESHOLD: "3",
    LOCKOUT_MINUTES: "4",
  });
});
afterAll(() => h.close());

/** Asks for a link for `email` and answers the token mailed. */
async function magicLink(email: string): Promise<string> {
  expect((await call(h.app, "POST", "/api/auth/magic-link", { body: { email } })).status).toBe(202);
  await h.deps.auth.settled();
  const mails = (await Bun.file(`${h.dataDir}/outbox.jsonl`).text())
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { to: string; text: string });
  const mail = mails.findLast((m) => m.to === email && m.text.includes("magic-link?token="));
  expect(mail?.text).toContain("expires in 3 minutes");
  const token = /magic-link\?token=([A-Za-z0-9_-]+)/.exec(mail?.text ?? "")?.[1];
  if (!token) throw new Error(`no magic link mailed to ${email}`);
  return token;
}

/** The token of the verification link mailed to `email` at sign-up. */
async function verificationLink(email: string): Promise<string> {
  await h.deps.auth.settled();
  const mails = (await Bun.file(`${h.dataDir}/outbox.jsonl`).text())
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { to: string; text: string });
  const mail = mails.findLast((m) => m.to === email && m.text.includes("verify-email?token="));
  expect(mail?.text).toContain("expires in 5 hours");
  const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail?.text ?? "")?.[1];
  if (!token) throw new Error(`no verification link mailed to ${email}`);
  return token;
}

describe("lifetimes set in the environment", () => {
  it("keeps a verification link EMAIL_VERIFICATION_TTL_HOURS (5): used at 5h less a second it verifies, at 5h and a second it is refused", async () => {
    const [early, late] = [await signup(h.app), await signup(h.app)];
    const [earlyLink, lateLink] = [await verificationLink(early.email), await verificationLink(late.email)];
    // Posted from the account's session, with an access token refreshed (the first one lasts 30 minutes).
    const verify = async (user: { refresh_token: string }, token: string) => {
      const refreshed = await call(h.app, "POST", "/api/auth/refresh", {
        body: { refresh_token: user.refresh_token },
      });
      expect(refreshed.status).toBe(200);
      const access = refreshed.body.access_token;
      return call(h.app, "POST", "/api/auth/verify-email", { token: access, body: { token } });
    };
    h.clock.advance(5 * 60 * MINUTE - SECOND);
    const ok = await verify(early, earlyLink);
    expect([ok.status, ok.body.email_verified]).toEqual([200, true]);
    h.clock.advance(2 * SECOND);
    const expired = await verify(late, lateLink);
    expect([expired.status, expired.body.error?.code]).toEqual([401, "invalid_token"]);
  });

  it("keeps a magic link MAGIC_LINK_TTL_MINUTES (3): used at 2m59s it signs in, at 3m01s it is refused", async () => {
    const [early, late] = [await signup(h.app), await signup(h.app)];
    const [earlyLink, lateLink] = [await magicLink(early.email), await magicLink(late.email)];
    const verify = (token: string) => call(h.app, "POST", "/api/auth/magic-link/verify", { body: { token } });
    h.clock.advance(3 * MINUTE - SECOND);
    const ok = await verify(earlyLink);
    expect(ok.status).toBe(200);
    expect(ok.body.user.id).toBe(early.id);
    h.clock.advance(2 * SECOND);
    const expired = await verify(lateLink);
    expect([expired.status, expired.body.error?.code]).toEqual([401, "invalid_token"]);
  });

  it("keeps a refresh token REFRESH_TOKEN_EXPIRE_DAYS (2): used at 2 days less a second it rotates, at 2 days and a second it is refused", async () => {
    const [early, late] = [await signup(h.app), await signup(h.app)];
    const refresh = (refresh_token: string) =>
      call(h.app, "POST", "/api/auth/refresh", { body: { refresh_token } });
    h.clock.advance(2 * DAY - SECOND);
    const rotated = await refresh(early.refresh_token);
    expect(rotated.status).toBe(200);
    h.clock.advance(2 * SECOND);
    const expired = await refresh(late.refresh_token);
    expect([expired.status, expired.body.error?.code]).toEqual([401, "token_expired"]);
    // The token the rotation answered has 2 days of its own: a second before they end, it still rotates.
    h.clock.advance(2 * DAY - 3 * SECOND);
    expect((await refresh(rotated.body.refresh_token)).status).toBe(200);
  });

  it("locks an account LOCKOUT_MINUTES (4): still locked at 3m59s, open at 4m01s", async () => {
    const user = await signup(h.app);
    const attempt = (password: string) =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    for (let i = 0; i < 3; i++) expect((await attempt("wrong password here")).status).toBe(401);
    const locked = await attempt(user.password);
    expect([locked.status, locked.body.error?.code]).toEqual([429, "account_locked"]);
    expect(Number(locked.headers.get("retry-after"))).toBe(4 * 60);
    h.clock.advance(4 * MINUTE - SECOND);
    const still = await attempt(user.password);
    expect([still.status, still.body.error?.code]).toEqual([429, "account_locked"]);
    expect(Number(still.headers.get("retry-after"))).toBe(1);
    h.clock.advance(2 * SECOND);
    expect((await attempt(user.password)).status).toBe(200);
  });
});
