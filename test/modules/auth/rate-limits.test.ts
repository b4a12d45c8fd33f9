import { afterEach, describe, expect, it } from "bun:test";
import { call, type Harness, harness, newAccount } from "../../helpers.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

for (const backend of ["memory", "redis"] as const) {
  const env: Record<string, string> = backend === "redis" ? { REDIS_URL } : {};
  // Each run uses its own client address so Redis keys from earlier runs do not count.
  const ip = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${backend === "redis" ? 1 : 2}`;
  const headers = { "x-forwarded-for": ip };

  describe(`rate limits (${backend})`, () => {
    it("limits sign-up per IP: over the limit is 429 rate_limited with Retry-After and RateLimit headers", async () => {
      h = await harness({
        ...env,
        TRUST_PROXY: "true",
        AUTH_RATE_LIMIT_PER_MINUTE: "2",
        AUTH_RATE_LIMIT_BURST: "1",
      });
      for (let i = 0; i < 3; i++) {
        const ok = await call(h.app, "POST", "/api/auth/signup", { body: newAccount(), headers });
        expect(ok.status).toBe(201);
      }
      const res = await call(h.app, "POST", "/api/auth/signup", { body: newAccount(), headers });
      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe("rate_limited");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(res.headers.get("ratelimit-limit")).toBe("3");
      expect(res.headers.get("ratelimit-remaining")).toBe("0");
      // Another address is not affected.
      const other = await call(h.app, "POST", "/api/auth/signup", {
        body: newAccount(),
        headers: { "x-forwarded-for": `${ip}9` },
      });
      expect(other.status).toBe(201);
      // Time refills the bucket.
      h.clock.advance(30_000);
      expect((await call(h.app, "POST", "/api/auth/signup", { body: newAccount(), headers })).status).toBe(
        201,
      );
    });

    it("limits sign-in per IP, the one the trusted proxy appended to X-Forwarded-For", async () => {
      h = await harness({
        ...env,
        TRUST_PROXY: "true",
        AUTH_RATE_LIMIT_PER_MINUTE: "1",
        AUTH_RATE_LIMIT_BURST: "0",
      });
      const body = { email: "nobody@example.com", password: "some password" };
      expect((await call(h.app, "POST", "/api/auth/signin", { body, headers })).status).toBe(401);
      const res = await call(h.app, "POST", "/api/auth/signin", { body, headers });
      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe("rate_limited");
      // An address the client writes before the one the trusted proxy appends changes nothing.
      const spoofed = { "x-forwarded-for": `203.0.113.7, ${ip}` };
      expect((await call(h.app, "POST", "/api/auth/signin", { body, headers: spoofed })).status).toBe(429);
    });

    it("counts an IPv6 client by its /64: the addresses of one subnet share a limit, another subnet has its own", async () => {
      h = await harness({
        ...env,
        TRUST_PROXY: "true",
        AUTH_RATE_LIMIT_PER_MINUTE: "1",
        AUTH_RATE_LIMIT_BURST: "0",
      });
      const body = { email: "nobody@example.com", password: "some password" };
      // Each run a subnet of its own, so that Redis keys from earlier runs do not count.
      const net = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:${backend === "redis" ? 1 : 2}`;
      const from = (address: string) =>
        call(h!.app, "POST", "/api/auth/signin", { body, headers: { "x-forwarded-for": address } });
      expect((await from(`${net}::1`)).status).toBe(401);
      // Another address of the same /64, however it is written: the same client.
      expect((await from(`${net}:0:0:0:beef`)).status).toBe(429);
      expect((await from(`${net.toUpperCase()}:ffff:1:2:3`)).status).toBe(429);
      expect((await from(`${net}1::1`)).status).toBe(401);
    });

    it("gives clients behind a CDN and a load balancer a limit each with TRUST_PROXY=2, one with true", async () => {
      const body = { email: "nobody@example.com", password: "some password" };
      const limits = { AUTH_RATE_LIMIT_PER_MINUTE: "1", AUTH_RATE_LIMIT_BURST: "0" };
      // The client's address as the CDN appended it, then the CDN's as the load balancer appended it.
      const signin = (client: string, cdn: string) =>
        call(h!.app, "POST", "/api/auth/signin", {
          body,
          headers: { "x-forwarded-for": `${client}, ${cdn}` },
        });

      h = await harness({ ...env, ...limits, TRUST_PROXY: "2" });
      expect((await signin(`${ip}1`, `${ip}0`)).status).toBe(401);
      expect((await signin(`${ip}1`, `${ip}0`)).status).toBe(429);
      expect((await signin(`${ip}2`, `${ip}0`)).status).toBe(401);
      await h.close();
      h = undefined;

      // Trusting the load balancer alone, both clients are the CDN.
      h = await harness({ ...env, ...limits, TRUST_PROXY: "true" });
      expect((await signin(`${ip}1`, `${ip}0`)).status).toBe(401);
      expect((await signin(`${ip}2`, `${ip}0`)).status).toBe(429);
    });

    it("limits magic links per email, whichever address asks", async () => {
      h = await harness({ ...env, TRUST_PROXY: "true", MAGIC_LINK_PER_HOUR: "2" });
      const email = `limited${Date.now()}${backend}@example.com`;
      const ask = (n: number) =>
        call(h!.app, "POST", "/api/auth/magic-link", {
          body: { email },
          headers: { "x-forwarded-for": `${ip}${n}` },
        });
      expect((await ask(1)).status).toBe(202);
      expect((await ask(2)).status).toBe(202);
      const res = await ask(3);
      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe("rate_limited");
    });

    it("limits authenticated calls per user, with RateLimit headers on every answer", async () => {
      h = await harness({ ...env, TRUST_PROXY: "true", RATE_LIMIT_PER_MINUTE: "3", RATE_LIMIT_BURST: "0" });
      const signupFrom = async (n: number) => {
        const res = await call(h!.app, "POST", "/api/auth/signup", {
          body: newAccount(),
          headers: { "x-forwarded-for": `${ip}${n}` },
        });
        return { token: res.body.access_token as string };
      };
      const user = await signupFrom(1);
      const first = await call(h.app, "GET", "/api/auth/me", { token: user.token });
      expect(first.status).toBe(200);
      expect(first.headers.get("ratelimit-limit")).toBe("3");
      expect(first.headers.get("ratelimit-remaining")).toBe("2");
      await call(h.app, "GET", "/api/auth/me", { token: user.token });
      await call(h.app, "GET", "/api/auth/me", { token: user.token });
      const res = await call(h.app, "GET", "/api/auth/me", { token: user.token });
      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe("rate_limited");
      // Another user has a bucket of their own.
      const other = await signupFrom(2);
      expect((await call(h.app, "GET", "/api/auth/me", { token: other.token })).status).toBe(200);
    });

    it("limits calls without a good token per address, whatever they are answered", async () => {
      h = await harness({ ...env, TRUST_PROXY: "true", RATE_LIMIT_PER_MINUTE: "4", RATE_LIMIT_BURST: "0" });
      const from = (n: number) => ({ "x-forwarded-for": `${ip}5${n}` });
      const user = await call(h.app, "POST", "/api/auth/signup", { body: newAccount(), headers: from(9) });
      const calls = [
        // No token, a made-up one, a body that fails validation, a route that does not exist.
        () => call(h!.app, "GET", "/api/users/search?q=x", { headers: from(1) }),
        () => call(h!.app, "GET", "/api/users/search?q=x", { headers: from(1), token: "x.y.z" }),
        () => call(h!.app, "POST", "/api/auth/signin", { headers: from(1), body: {} }),
        () => call(h!.app, "GET", "/api/no-such-route", { headers: from(1) }),
      ];
      expect(await Promise.all(calls.map(async (c) => (await c()).status))).toEqual([401, 401, 422, 404]);
      for (const c of calls) {
        const res = await c();
        expect([res.status, res.body.error.code]).toEqual([429, "rate_limited"]);
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      }
      // Another address, and a good token from the same one, are limited apart.
      expect((await call(h.app, "GET", "/api/users/search?q=x", { headers: from(2) })).status).toBe(401);
      const me = await call(h.app, "GET", "/api/auth/me", {
        headers: from(1),
        token: user.body.access_token,
      });
      expect(me.status).toBe(200);
    });

    it("limits calls with a made-up token per address too where no auth guard reads it: a 404, a refused body, a route that takes no token", async () => {
      h = await harness({ ...env, TRUST_PROXY: "true", RATE_LIMIT_PER_MINUTE: "4", RATE_LIMIT_BURST: "0" });
      const headers = { "x-forwarded-for": `${ip}61` };
      const token = "x.y.z";
      const calls = [
        () => call(h!.app, "GET", "/api/no-such-route", { headers, token }),
        () => call(h!.app, "POST", "/api/auth/signin", { headers, token, body: {} }),
        () => call(h!.app, "POST", "/api/conversations", { headers, token, raw: "{not json" }),
        () => call(h!.app, "POST", "/api/auth/refresh", { headers, token, body: { refresh_token: "nope" } }),
      ];
      expect(await Promise.all(calls.map(async (c) => (await c()).status))).toEqual([404, 422, 400, 401]);
      for (const c of calls) {
        const res = await c();
        expect([res.status, res.body.error.code]).toEqual([429, "rate_limited"]);
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      }
      // A made-up token to a guarded route is counted once, by the guard: four 401s, then 429.
      const other = { "x-forwarded-for": `${ip}62` };
      for (let i = 0; i < 4; i++)
        expect((await call(h.app, "GET", "/api/auth/me", { headers: other, token })).status).toBe(401);
      expect((await call(h.app, "GET", "/api/auth/me", { headers: other, token })).status).toBe(429);
    });
  });
}
