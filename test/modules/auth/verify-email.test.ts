// The mail that proves a new account's address: one at sign-up (and on request, rate limited with magic
// links), a link whose token verifies the address when posted from a session of that account.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { call, type Harness, harness, mailedLinkToken, newAccount, signup } from "../../helpers.ts";

interface OutboxMail {
  to: string;
  subject: string;
  text: string;
}

function mailsTo(h: Harness, email: string): OutboxMail[] {
  const file = join(h.dataDir, "outbox.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as OutboxMail)
    .filter((m) => m.to === email);
}

const LINK = /https:\/\/chat\.example\.com\/auth\/verify-email\?token=([A-Za-z0-9_-]+)/;

/** The token of the last verification link mailed to `email`, once the mail in flight has gone. */
async function verificationToken(h: Harness, email: string): Promise<string> {
  await h.deps.auth.settled();
  const token = mailsTo(h, email)
    .map((m) => LINK.exec(m.text)?.[1])
    .findLast((t) => t !== undefined);
  if (!token) throw new Error(`no verification link mailed to ${email}`);
  return token;
}

describe("the verification mail", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ PUBLIC_URL: "https://chat.example.com" });
  });
  afterAll(() => h.close());

  const verifyEmail = (token: string | undefined, body: unknown) =>
    call(h.app, "POST", "/api/auth/verify-email", { token, body });
  const resend = (token: string | undefined) =>
    call(h.app, "POST", "/api/auth/verify-email/resend", { token });
  const me = (token: string) => call(h.app, "GET", "/api/auth/me", { token });
  const signin = (email: string, password: string) =>
    call(h.app, "POST", "/api/auth/signin", { body: { email, password } });

  it("goes out once at sign-up, to the address, with a link to PUBLIC_URL/auth/verify-email; the token is stored hashed", async () => {
    const user = await signup(h.app);
    const token = await verificationToken(h, user.email);
    const mails = mailsTo(h, user.email);
    expect(mails).toHaveLength(1);
    expect(mails[0]?.subject).toBe("Confirm your Parley email address");
    expect(mails[0]?.text).toContain(user.username);
    expect(mails[0]?.text).toContain("expires in 48 hours");
    // Not stored as itself: the raw token finds nothing (and the link still works below).
    expect(await h.deps.store.emailVerifications.consume(token, h.clock.now())).toBeNull();
    expect((await verifyEmail(user.token, { token })).status).toBe(200);
  });

  it("verifies the address from a session of the account, once; the password, sessions and later links change nothing", async () => {
    const user = await signup(h.app);
    const phone = await signin(user.email, user.password);
    expect(phone.status).toBe(200);
    const token = await verificationToken(h, user.email);

    const res = await verifyEmail(user.token, { token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, email_verified: true, has_password: true });
    const again = await verifyEmail(user.token, { token });
    expect([again.status, again.body.error.code]).toEqual([401, "invalid_token"]);

    expect((await me(phone.body.access_token)).body).toMatchObject({ email_verified: true });
    // Verified: a magic link is a plain sign-in now, no takeover; the password and sessions stay.
    const link = await mailedLinkToken(h, user.email);
    const byLink = await call(h.app, "POST", "/api/auth/magic-link/verify", { body: { token: link } });
    expect(byLink.body.user).toMatchObject({ email_verified: true, has_password: true });
    expect((await me(phone.body.access_token)).status).toBe(200);
    expect((await signin(user.email, user.password)).status).toBe(200);
  });

  it("refuses a link posted without a session (401 unauthorized) or from another account's (401 invalid_token, and it is spent)", async () => {
    const user = await signup(h.app);
    const other = await signup(h.app);
    const token = await verificationToken(h, user.email);
    const anonymous = await verifyEmail(undefined, { token });
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, "unauthorized"]);
    const theirs = await verifyEmail(other.token, { token });
    expect([theirs.status, theirs.body.error.code]).toEqual([401, "invalid_token"]);
    expect((await me(other.token)).body.email_verified).toBe(false);
    const late = await verifyEmail(user.token, { token });
    expect([late.status, late.body.error.code]).toEqual([401, "invalid_token"]);
    expect((await me(user.token)).body.email_verified).toBe(false);
  });

  it("is not a sign-in link, nor a sign-in link a verification: each is unknown to the other route", async () => {
    const user = await signup(h.app);
    const token = await verificationToken(h, user.email);
    const asLink = await call(h.app, "POST", "/api/auth/magic-link/verify", { body: { token } });
    expect([asLink.status, asLink.body.error.code]).toEqual([401, "invalid_token"]);
    const link = await mailedLinkToken(h, user.email);
    const asProof = await verifyEmail(user.token, { token: link });
    expect([asProof.status, asProof.body.error.code]).toEqual([401, "invalid_token"]);
    expect((await me(user.token)).body.email_verified).toBe(false);
    // Neither was spent by the other route.
    expect((await verifyEmail(user.token, { token })).status).toBe(200);
  });

  it("refuses bad bodies with 422 naming token", async () => {
    const user = await signup(h.app);
    for (const body of [{}, { token: "" }, { token: 42 }, { token: "x".repeat(201) }]) {
      const res = await verifyEmail(user.token, body);
      expect([res.status, res.body.error.code, res.body.error.field]).toEqual([
        422,
        "validation_failed",
        "token",
      ]);
    }
  });

  it("leaves a squatter's account unproved: the mail is the owner's, and their magic link still takes it over", async () => {
    // Someone signs up with an address that is not theirs: the mail goes to the address's owner, who
    // holds no session of the account, and the squatter never sees the link.
    const squatter = await signup(h.app);
    const token = await verificationToken(h, squatter.email);
    expect((await verifyEmail(undefined, { token })).status).toBe(401);
    const link = await mailedLinkToken(h, squatter.email);
    const owner = await call(h.app, "POST", "/api/auth/magic-link/verify", { body: { token: link } });
    expect(owner.body.user).toMatchObject({ email_verified: true, has_password: false });
    expect((await me(squatter.token)).body.error.code).toBe("session_revoked");
    // The owner may still post the link: the address is proved already, and nothing else changes.
    const late = await verifyEmail(owner.body.access_token, { token });
    expect(late.status).toBe(200);
    expect(late.body).toMatchObject({ email_verified: true, has_password: false });
  });

  it("mails nothing more for a sign-up refused because the address is taken", async () => {
    const user = await signup(h.app);
    await verificationToken(h, user.email);
    const again = await call(h.app, "POST", "/api/auth/signup", {
      body: newAccount({ email: user.email }),
    });
    expect([again.status, again.body.error.code]).toEqual([409, "email_taken"]);
    await h.deps.auth.settled();
    expect(mailsTo(h, user.email)).toHaveLength(1);
  });

  it("resends a link on request (202), which works; a verified address gets 409 already_verified and no mail", async () => {
    const user = await signup(h.app);
    const first = await verificationToken(h, user.email);
    const res = await resend(user.token);
    expect([res.status, res.body]).toEqual([202, { status: "accepted" }]);
    const second = await verificationToken(h, user.email);
    expect(second).not.toBe(first);
    expect(mailsTo(h, user.email)).toHaveLength(2);
    expect((await verifyEmail(user.token, { token: second })).status).toBe(200);

    const verified = await resend(user.token);
    expect([verified.status, verified.body.error.code]).toEqual([409, "already_verified"]);
    await h.deps.auth.settled();
    expect(mailsTo(h, user.email)).toHaveLength(2);
    expect((await resend(undefined)).status).toBe(401);
  });
});

describe("how often an address is mailed", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ PUBLIC_URL: "https://chat.example.com", MAGIC_LINK_PER_HOUR: "2" });
  });
  afterAll(() => h.close());

  it("counts resends and magic links together, MAGIC_LINK_PER_HOUR (2) an hour: past it both answer 429", async () => {
    const user = await signup(h.app);
    const resend = () => call(h.app, "POST", "/api/auth/verify-email/resend", { token: user.token });
    const magicLink = () => call(h.app, "POST", "/api/auth/magic-link", { body: { email: user.email } });
    expect((await resend()).status).toBe(202);
    expect((await magicLink()).status).toBe(202);
    const limited = await resend();
    expect([limited.status, limited.body.error.code]).toEqual([429, "rate_limited"]);
    expect(limited.headers.get("retry-after")).not.toBeNull();
    expect((await magicLink()).status).toBe(429);
    await h.deps.auth.settled();
    // The sign-up's own mail, then one resend and one sign-in link.
    expect(mailsTo(h, user.email).map((m) => m.subject)).toEqual([
      "Confirm your Parley email address",
      "Confirm your Parley email address",
      "Your Parley sign-in link",
    ]);
  });
});
