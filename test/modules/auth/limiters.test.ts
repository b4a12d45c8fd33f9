// The auth limiters rate-limits.test.ts leaves out: refresh and magic links (asked for and verified) per
// address, and password changes per user. Each is run over memory and Redis, like the others.

import { afterEach, describe, expect, it } from "bun:test";
import { type CallResult, call, type Harness, harness, newAccount } from "../../helpers.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A bucket of two: AUTH_RATE_LIMIT_PER_MINUTE 1 and AUTH_RATE_LIMIT_BURST 1. */
const TWO = { TRUST_PROXY: "true", AUTH_RATE_LIMIT_PER_MINUTE: "1", AUTH_RATE_LIMIT_BURST: "1" };

function expectLimited(res: CallResult) {
  expect([res.status, res.body.error?.code]).toEqual([429, "rate_limited"]);
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
}

for (const backend of ["memory", "redis"] as const) {
  const env: Record<string, string> = backend === "redis" ? { REDIS_URL } : {};
  // Redis keeps buckets across runs: every test takes addresses no earlier run used.
  const fresh = () => {
    const prefix = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    return (n: number) => ({ "x-forwarded-for": `${prefix}.${n}` });
  };

  describe(`auth limiters (${backend})`, () => {
    it("limits refresh per address: past the bucket 429 rate_limited, even with a good token, which stays unspent", async () => {
      h = await harness({ ...env, ...TWO });
      const from = fresh();
      const refresh = (n: number, refresh_token = "x".repeat(43)) =>
        call(h!.app, "POST", "/api/auth/refresh", { body: { refresh_token }, headers: from(n) });
      const user = await call(h.app, "POST", "/api/auth/signup", { body: newAccount(), headers: from(9) });
      expect(user.status).toBe(201);
      expect((await refresh(1)).status).toBe(401);
      expect((await refresh(1)).status).toBe(401);
      expectLimited(await refresh(1));
      expectLimited(await refresh(1, user.body.refresh_token));
      // Another address has a bucket of its own, and the token refused above was never looked at.
      expect((await refresh(2, user.body.refresh_token)).status).toBe(200);
    });

    it("limits magic-link requests per address, whatever email each asks for", async () => {
      h = await harness({ ...env, ...TWO });
      const from = fresh();
      const ask = (n: number, i: number) =>
        call(h!.app, "POST", "/api/auth/magic-link", {
          body: { email: `ask${i}-${Date.now()}@example.com` },
          headers: from(n),
        });
      expect((await ask(1, 1)).status).toBe(202);
      expect((await ask(1, 2)).status).toBe(202);
      expectLimited(await ask(1, 3));
      expect((await ask(2, 4)).status).toBe(202);
    });

    it("limits magic-link verification per address: past the bucket a good link is refused, and still works elsewhere", async () => {
      h = await harness({ ...env, ...TWO, PUBLIC_URL: "https://chat.example.com" });
      const from = fresh();
      const account = newAccount();
      expect(
        (await call(h.app, "POST", "/api/auth/signup", { body: account, headers: from(9) })).status,
      ).toBe(201);
      const asked = await call(h.app, "POST", "/api/auth/magic-link", {
        body: { email: account.email },
        headers: from(8),
      });
      expect(asked.status).toBe(202);
      await h.deps.auth.settled();
      const mail = await Bun.file(`${h.dataDir}/outbox.jsonl`).text();
      const token = /magic-link\?token=([A-Za-z0-9_-]+)/.exec(mail)?.[1] ?? "";
      expect(token).not.toBe("");

      const verify = (n: number, t: string) =>
        call(h!.app, "POST", "/api/auth/magic-link/verify", { body: { token: t }, headers: from(n) });
      expect((await verify(1, "made-up-token")).status).toBe(401);
      expect((await verify(1, "made-up-token")).status).toBe(401);
      expectLimited(await verify(1, token));
      const elsewhere = await verify(2, token);
      expect(elsewhere.status).toBe(200);
      expect(elsewhere.body.user.email).toBe(account.email);
    });

    it("limits password changes per user, not per address: past the bucket even the right password is refused", async () => {
      h = await harness({ ...env, ...TWO });
      const from = fresh();
      const signupFrom = async (n: number) => {
        const account = newAccount();
        const res = await call(h!.app, "POST", "/api/auth/signup", { body: account, headers: from(n) });
        expect(res.status).toBe(201);
        return { password: account.password, token: res.body.access_token as string };
      };
      // Both users change passwords from one address: each has a bucket of their own.
      const [alice, bob] = [await signupFrom(1), await signupFrom(2)];
      const change = (user: { token: string }, current_password: string) =>
        call(h!.app, "POST", "/api/auth/change-password", {
          token: user.token,
          headers: from(5),
          body: { current_password, new_password: "a brand new passphrase" },
        });
      expect((await change(alice, "not my password")).status).toBe(401);
      expect((await change(alice, "not my password")).status).toBe(401);
      expectLimited(await change(alice, alice.password));
      expect((await change(bob, "not my password")).status).toBe(401);
      // Time refills the bucket, and the change goes through.
      h.clock.advance(60_000);
      expect((await change(alice, alice.password)).status).toBe(200);
    });
  });
}
