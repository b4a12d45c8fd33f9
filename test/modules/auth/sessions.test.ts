import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { sha256 } from "../../../src/lib/crypto.ts";
import { call, type Harness, harness, signup, TEST_SECRET } from "../../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness({ LOCKOUT_THRESHOLD: "3", LOCKOUT_MINUTES: "15" });
});
afterAll(() => h.close());

const MINUTE = 60_000;
const refresh = (refresh_token: string) =>
  call(h.app, "POST", "/api/auth/refresh", { body: { refresh_token } });
const me = (token: string) => call(h.app, "GET", "/api/auth/me", { token });

describe("lockout", () => {
  it("locks an account after LOCKOUT_THRESHOLD failures, even against the right password, for LOCKOUT_MINUTES", async () => {
    const user = await signup(h.app);
    const attempt = (password: string) =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    for (let i = 0; i < 3; i++) expect((await attempt("wrong password here")).status).toBe(401);
    const locked = await attempt(user.password);
    expect(locked.status).toBe(429);
    expect(locked.body.error.code).toBe("account_locked");
    expect(Number(locked.headers.get("retry-after"))).toBe(15 * 60);
    // Locked by username too: it is the account that is locked, not the name typed.
    const byName = await call(h.app, "POST", "/api/auth/signin", {
      body: { username: user.username, password: user.password },
    });
    expect(byName.status).toBe(429);

    h.clock.advance(15 * MINUTE + 1000);
    expect((await attempt(user.password)).status).toBe(200);
  });

  it("counts only failures inside the window", async () => {
    const user = await signup(h.app);
    const attempt = (password: string) =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    await attempt("wrong password here");
    await attempt("wrong password here");
    h.clock.advance(16 * MINUTE);
    await attempt("wrong password here");
    expect((await attempt(user.password)).status).toBe(200);
  });

  it("locks unknown accounts the same way, so lockout reveals no account", async () => {
    const attempt = () =>
      call(h.app, "POST", "/api/auth/signin", {
        body: { email: "ghost@example.com", password: "wrong password" },
      });
    for (let i = 0; i < 3; i++) expect((await attempt()).status).toBe(401);
    const res = await attempt();
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe("account_locked");
  });

  it("forgets failures after a successful sign-in", async () => {
    const user = await signup(h.app);
    const attempt = (password: string) =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    await attempt("wrong password here");
    await attempt("wrong password here");
    expect((await attempt(user.password)).status).toBe(200);
    await attempt("wrong password here");
    await attempt("wrong password here");
    expect((await attempt(user.password)).status).toBe(200);
  });

  it("checks no more than LOCKOUT_THRESHOLD passwords of a burst of sign-ins sent at once; the rest are locked out", async () => {
    const user = await signup(h.app);
    const attempt = (password: string) =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(`guess number ${i}`)));
    const codes = burst.map((r) => r.body.error.code);
    expect(codes.filter((c) => c === "invalid_credentials").length).toBe(3);
    expect(codes.filter((c) => c === "account_locked").length).toBe(9);
    expect((await attempt(user.password)).status).toBe(429);
  });

  it("counts wrong current passwords at change-password as failed sign-ins: a stolen session cannot guess the password past LOCKOUT_THRESHOLD", async () => {
    const user = await signup(h.app);
    const change = (current_password: string) =>
      call(h.app, "POST", "/api/auth/change-password", {
        token: user.token,
        body: { current_password, new_password: "a brand new passphrase" },
      });
    for (let i = 0; i < 3; i++) expect((await change(`guess number ${i}`)).status).toBe(401);
    // Locked: the right password is refused too, here and at sign-in, for LOCKOUT_MINUTES.
    const locked = await change(user.password);
    expect([locked.status, locked.body.error.code]).toEqual([429, "account_locked"]);
    const signin = () =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password: user.password } });
    expect((await signin()).status).toBe(429);
    h.clock.advance(15 * MINUTE + 1000);
    expect((await change(user.password)).status).toBe(200);
  });
});

describe("refresh tokens", () => {
  it("rotates: a refresh answers a new pair and spends the old refresh token", async () => {
    const user = await signup(h.app);
    const first = await refresh(user.refresh_token);
    expect(first.status).toBe(200);
    expect(first.body.refresh_token).not.toBe(user.refresh_token);
    expect(first.body.session_id).toBe(user.session_id);
    expect((await me(first.body.access_token)).status).toBe(200);
    const second = await refresh(first.body.refresh_token);
    expect(second.status).toBe(200);
  });

  it("stores refresh tokens hashed", async () => {
    const user = await signup(h.app);
    // The database and its WAL, where a row lies until a checkpoint: the hash is found there (so these are
    // the bytes that hold the row), the token is not.
    const files = ["parley.db", "parley.db-wal"].map((f) => join(h.dataDir, f)).filter(existsSync);
    const bytes = files.map((f) => readFileSync(f));
    expect(bytes.some((b) => b.includes(sha256(user.refresh_token)))).toBe(true);
    expect(bytes.some((b) => b.includes(user.refresh_token))).toBe(false);
  });

  it("revokes the whole session when a spent refresh token comes back after its grace", async () => {
    const user = await signup(h.app);
    const rotated = await refresh(user.refresh_token);
    h.clock.advance(h.config.REFRESH_REUSE_GRACE_SECONDS * 1000 + 1);
    const reuse = await refresh(user.refresh_token);
    expect(reuse.status).toBe(401);
    expect(reuse.body.error.code).toBe("refresh_token_reused");
    // The newest refresh token and the access tokens of the session stop working.
    const newest = await refresh(rotated.body.refresh_token);
    expect(newest.status).toBe(401);
    expect(newest.body.error.code).toBe("session_revoked");
    const access = await me(rotated.body.access_token);
    expect(access.status).toBe(401);
    expect(access.body.error.code).toBe("session_revoked");
    expect((await me(user.token)).body.error.code).toBe("session_revoked");
  });

  it("spends a token once under concurrent refreshes: one rotates it, the other is its retry", async () => {
    const user = await signup(h.app);
    const [a, b] = await Promise.all([refresh(user.refresh_token), refresh(user.refresh_token)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.refresh_token).not.toBe(b.body.refresh_token);
    expect((await me(a.body.access_token)).status).toBe(200);
    expect((await me(b.body.access_token)).status).toBe(200);
  });

  it("gives a spent refresh token back within REFRESH_REUSE_GRACE_SECONDS new tokens: its answer was lost", async () => {
    const user = await signup(h.app);
    const lost = await refresh(user.refresh_token); // the client never got this answer
    h.clock.advance(h.config.REFRESH_REUSE_GRACE_SECONDS * 1000 - 1000);
    const retried = await refresh(user.refresh_token);
    expect(retried.status).toBe(200);
    expect(retried.body.session_id).toBe(user.session_id);
    expect((await me(retried.body.access_token)).status).toBe(200);
    expect((await refresh(retried.body.refresh_token)).status).toBe(200);
    // The tokens of the lost answer stay good: nothing was copied.
    expect((await refresh(lost.body.refresh_token)).status).toBe(200);
  });

  it("refuses an unknown refresh token with 401 unauthorized", async () => {
    const res = await refresh("x".repeat(43));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
  });

  it("refuses a refresh token older than REFRESH_TOKEN_EXPIRE_DAYS with 401 token_expired", async () => {
    const user = await signup(h.app);
    h.clock.advance(7 * 24 * 60 * MINUTE + 1000);
    const res = await refresh(user.refresh_token);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("token_expired");
  });

  it("ends a session at its absolute lifetime however often it is refreshed", async () => {
    const user = await signup(h.app);
    let token = user.refresh_token;
    for (let day = 0; day < 29; day++) {
      h.clock.advance(24 * 60 * MINUTE);
      const res = await refresh(token);
      expect(res.status).toBe(200);
      token = res.body.refresh_token;
    }
    h.clock.advance(24 * 60 * MINUTE + 1000);
    const res = await refresh(token);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("token_expired");
  });
});

describe("access tokens", () => {
  it("refuses an expired access token with 401 token_expired", async () => {
    const user = await signup(h.app);
    h.clock.advance(31 * MINUTE);
    const res = await me(user.token);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("token_expired");
  });

  it("refuses missing, garbage and foreign tokens with 401 unauthorized", async () => {
    const user = await signup(h.app);
    const now = Math.floor(h.clock.now() / 1000);
    const claims = { sid: user.session_id };
    const sign = (secret: string, alg: string, extra: Record<string, string> = {}) =>
      new SignJWT({ ...claims, ...extra })
        .setProtectedHeader({ alg })
        .setSubject(user.id)
        .setIssuer(extra.iss ?? "parley")
        .setAudience(extra.aud ?? "parley-api")
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(new TextEncoder().encode(secret));
    const header = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const unsigned = `${header({ alg: "none" })}.${header({ sub: user.id, sid: user.session_id, exp: now + 600 })}.`;
    const cases: [string, Record<string, string>][] = [
      ["no header", {}],
      ["garbage", { authorization: "Bearer not.a.jwt" }],
      ["wrong scheme", { authorization: `Basic ${user.token}` }],
      ["alg none", { authorization: `Bearer ${unsigned}` }],
      [
        "other secret",
        { authorization: `Bearer ${await sign("another-secret-that-is-long-enough-xxxxxxxx", "HS256")}` },
      ],
      ["other alg", { authorization: `Bearer ${await sign(TEST_SECRET, "HS512")}` }],
      ["other audience", { authorization: `Bearer ${await sign(TEST_SECRET, "HS256", { aud: "x" })}` }],
      ["other issuer", { authorization: `Bearer ${await sign(TEST_SECRET, "HS256", { iss: "x" })}` }],
    ];
    for (const [name, headers] of cases) {
      const res = await call(h.app, "GET", "/api/auth/me", { headers });
      expect({ name, status: res.status, code: res.body.error.code }).toEqual({
        name,
        status: 401,
        code: "unauthorized",
      });
    }
    // The control: the same construction with the right secret and algorithm works.
    const good = await call(h.app, "GET", "/api/auth/me", {
      headers: { authorization: `Bearer ${await sign(TEST_SECRET, "HS256")}` },
    });
    expect(good.status).toBe(200);
  });
});

describe("sign-out, sessions and password change", () => {
  it("signs out: 204, then the access and refresh tokens of that session are refused", async () => {
    const user = await signup(h.app);
    const out = await call(h.app, "POST", "/api/auth/signout", { token: user.token });
    expect(out.status).toBe(204);
    const res = await me(user.token);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("session_revoked");
    expect((await refresh(user.refresh_token)).body.error.code).toBe("session_revoked");
  });

  it("refuses a token of a session revoked on another node within a second", async () => {
    const user = await signup(h.app);
    expect((await me(user.token)).status).toBe(200); // cached as live
    // Another node revokes it straight in the shared store; this node has not been told.
    await h.deps.store.sessions.revoke(user.session_id, h.clock.now());
    h.clock.advance(1000);
    expect((await me(user.token)).body.error.code).toBe("session_revoked");
  });

  it("GET /api/auth/me answers the user with email", async () => {
    const user = await signup(h.app);
    const res = await me(user.token);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, email: user.email, username: user.username });
  });

  it("lists the live sessions with the current one marked, and deletes one", async () => {
    const user = await signup(h.app);
    const other = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: user.password, device_name: "phone" },
      headers: { "user-agent": "ParleyTest/1.0" },
    });
    const list = await call(h.app, "GET", "/api/auth/sessions", { token: user.token });
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(2);
    const phone = list.body.items.find((s: { device_name: string }) => s.device_name === "phone");
    expect(phone).toMatchObject({ id: other.body.session_id, user_agent: "ParleyTest/1.0", current: false });
    expect(list.body.items.find((s: { current: boolean }) => s.current).id).toBe(user.session_id);
    for (const key of ["id", "device_name", "user_agent", "ip", "created_at", "last_seen_at", "current"]) {
      expect(phone).toHaveProperty(key);
    }

    const del = await call(h.app, "DELETE", `/api/auth/sessions/${other.body.session_id}`, {
      token: user.token,
    });
    expect(del.status).toBe(204);
    expect((await me(other.body.access_token)).body.error.code).toBe("session_revoked");
    const after = await call(h.app, "GET", "/api/auth/sessions", { token: user.token });
    expect(after.body.items).toHaveLength(1);
  });

  it("answers 404 for deleting another user's session, and leaves it alive", async () => {
    const alice = await signup(h.app);
    const bob = await signup(h.app);
    const res = await call(h.app, "DELETE", `/api/auth/sessions/${bob.session_id}`, { token: alice.token });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    expect((await me(bob.token)).status).toBe(200);
  });

  it("changes the password and revokes every other session of the user", async () => {
    const user = await signup(h.app);
    const other = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: user.password },
    });
    const res = await call(h.app, "POST", "/api/auth/change-password", {
      token: user.token,
      body: { current_password: user.password, new_password: "a brand new passphrase" },
    });
    expect(res.status).toBe(200);
    expect((await me(user.token)).status).toBe(200);
    expect((await me(other.body.access_token)).body.error.code).toBe("session_revoked");
    expect((await refresh(other.body.refresh_token)).body.error.code).toBe("session_revoked");
    const old = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: user.password },
    });
    expect(old.status).toBe(401);
    const fresh = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: "a brand new passphrase" },
    });
    expect(fresh.status).toBe(200);
  });

  it("refuses a wrong current password (401 invalid_credentials) and a weak new one (422)", async () => {
    const user = await signup(h.app);
    const wrong = await call(h.app, "POST", "/api/auth/change-password", {
      token: user.token,
      body: { current_password: "not my password", new_password: "a brand new passphrase" },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe("invalid_credentials");
    const weak = await call(h.app, "POST", "/api/auth/change-password", {
      token: user.token,
      body: { current_password: user.password, new_password: "password1" },
    });
    expect(weak.status).toBe(422);
    expect(weak.body.error.code).toBe("weak_password");
  });

  it("needs a token for every authenticated route", async () => {
    const routes: [string, string][] = [
      ["POST", "/api/auth/change-password"],
      ["POST", "/api/auth/signout"],
      ["GET", "/api/auth/me"],
      ["GET", "/api/auth/sessions"],
      ["DELETE", "/api/auth/sessions/abc"],
      ["GET", "/api/users"],
      ["GET", "/api/users/abc"],
      ["PUT", "/api/users/abc"],
    ];
    for (const [method, path] of routes) {
      const res = await call(h.app, method, path);
      expect({ method, path, status: res.status, code: res.body?.error?.code }).toEqual({
        method,
        path,
        status: 401,
        code: "unauthorized",
      });
    }
  });
});

describe("the session cache", () => {
  it("keeps an answer only while it may be used: stale ones are dropped, not kept for every session seen", async () => {
    const users = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const cache = h.deps.sessions;
    for (const u of users) expect(await cache.state(u.session_id, u.id)).toBe("live");
    const held = cache.size;
    expect(held).toBeGreaterThanOrEqual(3);
    // Past the purge interval every earlier answer is stale: the next check drops them and keeps its own.
    h.clock.advance(11_000);
    const [first] = users;
    expect(await cache.state(first?.session_id as string, first?.id as string)).toBe("live");
    expect(cache.size).toBe(1);
    // Still right for the others: read again from the store.
    for (const u of users) expect(await cache.state(u.session_id, u.id)).toBe("live");
  });
});

describe("refresh-token reuse with REFRESH_REUSE_GRACE_SECONDS=0", () => {
  it("ends the session at the first reuse, however soon", async () => {
    const strict = await harness({ REFRESH_REUSE_GRACE_SECONDS: "0" });
    const post = (refresh_token: string) =>
      call(strict.app, "POST", "/api/auth/refresh", { body: { refresh_token } });
    const user = await signup(strict.app);
    const rotated = await post(user.refresh_token);
    const reuse = await post(user.refresh_token);
    expect([reuse.status, reuse.body.error.code]).toEqual([401, "refresh_token_reused"]);
    expect((await post(rotated.body.refresh_token)).body.error.code).toBe("session_revoked");
    await strict.close();
  });
});
