import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, type Harness, harness, newAccount, signup } from "../../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(() => h.close());

describe("POST /api/auth/signup", () => {
  it("creates an account and answers 201 with a token response", async () => {
    const account = newAccount({ email: "Mixed.Case@Example.COM", username: "Mixed_Case.1" });
    const res = await call(h.app, "POST", "/api/auth/signup", { body: account });
    expect(res.status).toBe(201);
    expect(res.body.token_type).toBe("bearer");
    expect(res.body.expires_in).toBe(30 * 60);
    expect(res.body.refresh_token.length).toBeGreaterThanOrEqual(43); // 256 bits, base64url
    expect(typeof res.body.access_token).toBe("string");
    expect(typeof res.body.session_id).toBe("string");
    expect(res.body.user).toMatchObject({
      email: "mixed.case@example.com",
      username: "mixed_case.1",
      display_name: account.display_name,
      status: "offline",
      chosen_status: "online",
      email_verified: false,
      has_password: true,
      last_seen: null,
    });
    expect(Object.keys(res.body.user).sort()).toEqual(
      [
        "id",
        "email",
        "username",
        "display_name",
        "status",
        "chosen_status",
        "email_verified",
        "has_password",
        "last_seen",
        "created_at",
        "updated_at",
      ].sort(),
    );
  });

  it("stores the password as an argon2id hash, never in clear", async () => {
    const user = await signup(h.app);
    const record = await h.deps.store.users.byId(user.id);
    expect(record?.password_hash?.startsWith("$argon2id$")).toBe(true);
    expect(record?.password_hash?.includes(user.password)).toBe(false);
  });

  it("hashes at the configured cost (PASSWORD_HASH_MEMORY_KIB, PASSWORD_HASH_TIME)", async () => {
    const user = await signup(h.app);
    const record = await h.deps.store.users.byId(user.id);
    const { PASSWORD_HASH_MEMORY_KIB: m, PASSWORD_HASH_TIME: t } = h.config;
    expect(record?.password_hash?.startsWith(`$argon2id$v=19$m=${m},t=${t},p=1$`)).toBe(true);
  });

  it("refuses a taken email with 409 email_taken, case-insensitively", async () => {
    const first = await signup(h.app);
    const res = await call(h.app, "POST", "/api/auth/signup", {
      body: newAccount({ email: first.email.toUpperCase() }),
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("email_taken");
  });

  it("refuses a taken username with 409 username_taken, case-insensitively", async () => {
    const first = await signup(h.app);
    const res = await call(h.app, "POST", "/api/auth/signup", {
      body: newAccount({ username: first.username.toUpperCase() }),
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("username_taken");
  });

  it.each([
    ["ab", "too short"],
    ["a".repeat(33), "too long"],
    ["has space", "a space"],
    ["dash-name", "a dash"],
    ["émile", "a non-ASCII letter"],
  ])("refuses the username %p (%s) with 422 naming the field", async (username) => {
    const res = await call(h.app, "POST", "/api/auth/signup", { body: newAccount({ username }) });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.field).toBe("username");
  });

  it("refuses a malformed email with 422 naming the field", async () => {
    const res = await call(h.app, "POST", "/api/auth/signup", {
      body: newAccount({ email: "not-an-email" }),
    });
    expect(res.status).toBe(422);
    expect(res.body.error.field).toBe("email");
  });

  it("refuses a missing field with 422 naming it", async () => {
    const { password: _, ...body } = newAccount();
    const res = await call(h.app, "POST", "/api/auth/signup", { body });
    expect(res.status).toBe(422);
    expect(res.body.error.field).toBe("password");
    expect(JSON.stringify(res.body)).not.toContain(body.email); // no echo of the input
  });

  it.each([
    ["short1!", "shorter than 8"],
    ["password123", "on the common list"],
    ["qwertyuiop", "on the common list"],
    ["x".repeat(257), "longer than 256"],
  ])("refuses the password %p (%s) with 422 weak_password", async (password) => {
    const res = await call(h.app, "POST", "/api/auth/signup", { body: newAccount({ password }) });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("weak_password");
  });

  it("accepts a 128-character password", async () => {
    const res = await call(h.app, "POST", "/api/auth/signup", {
      body: newAccount({ password: "Zq9!".repeat(32) }),
    });
    expect(res.status).toBe(201);
  });

  it("answers malformed JSON with 400 bad_request", async () => {
    const res = await call(h.app, "POST", "/api/auth/signup", { raw: '{"email": ' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("bad_request");
  });

  it("answers a body without a content type with 415, and a missing or empty body with 422", async () => {
    const untyped = await h.app.handle(
      new Request("http://localhost/api/auth/signup", { method: "POST", body: JSON.stringify(newAccount()) }),
    );
    expect(untyped.status).toBe(415);
    expect(((await untyped.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
    for (const res of [
      await call(h.app, "POST", "/api/auth/signup"),
      await call(h.app, "POST", "/api/auth/signup", { raw: "" }),
    ]) {
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: "validation_failed", field: "body" });
    }
  });

  it("answers a non-JSON body with 415 unsupported_media_type", async () => {
    const res = await call(h.app, "POST", "/api/auth/signup", {
      raw: "email=a@b.c",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe("unsupported_media_type");
  });
});

describe("POST /api/auth/signin", () => {
  it("signs in by email or by username, opening a new device session each time", async () => {
    const user = await signup(h.app);
    const byEmail = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email.toUpperCase(), password: user.password, device_name: "laptop" },
    });
    const byName = await call(h.app, "POST", "/api/auth/signin", {
      body: { username: user.username, password: user.password },
    });
    expect(byEmail.status).toBe(200);
    expect(byName.status).toBe(200);
    expect(byEmail.body.user.id).toBe(user.id);
    const ids = new Set([user.session_id, byEmail.body.session_id, byName.body.session_id]);
    expect(ids.size).toBe(3);
    const sessions = await call(h.app, "GET", "/api/auth/sessions", { token: byEmail.body.access_token });
    expect(sessions.body.items.map((s: { device_name: string }) => s.device_name)).toContain("laptop");
  });

  it("answers a wrong password and an unknown account alike: 401 invalid_credentials", async () => {
    const user = await signup(h.app);
    const wrong = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: "not the password at all" },
    });
    const unknown = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: "nobody-here@example.com", password: "not the password at all" },
    });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
    expect(wrong.body.error.code).toBe("invalid_credentials");
  });

  it("spends a password hash verification on unknown accounts too (no timing oracle)", async () => {
    const user = await signup(h.app);
    const time = async (email: string) => {
      const t0 = performance.now();
      await call(h.app, "POST", "/api/auth/signin", { body: { email, password: "not the password at all" } });
      return performance.now() - t0;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 3; i++) {
      known.push(await time(user.email));
      unknown.push(await time(`ghost${i}@example.com`));
    }
    // Without the dummy hash an unknown account answers ~100x faster; argon2 dominates both here.
    expect(median(unknown)).toBeGreaterThan(median(known) / 3);
  });

  it("re-hashes a password stored at another cost when its owner signs in, and only then", async () => {
    const user = await signup(h.app);
    const old = await Bun.password.hash(user.password, {
      algorithm: "argon2id",
      memoryCost: 19456,
      timeCost: 2,
    });
    await h.deps.store.users.update(user.id, { password_hash: old, updated_at: h.clock.now() });
    const stored = async () => (await h.deps.store.users.byId(user.id))?.password_hash;

    const wrong = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: "nope nope" },
    });
    expect(wrong.status).toBe(401);
    expect(await stored()).toBe(old);

    const first = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: user.password },
    });
    expect(first.status).toBe(200);
    const rehashed = await stored();
    const { PASSWORD_HASH_MEMORY_KIB: m, PASSWORD_HASH_TIME: t } = h.config;
    expect(rehashed?.startsWith(`$argon2id$v=19$m=${m},t=${t},p=1$`)).toBe(true);

    const second = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: user.email, password: user.password },
    });
    expect(second.status).toBe(200);
    expect(await stored()).toBe(rehashed as string);
  });

  it("needs an email or a username: 422 otherwise", async () => {
    const res = await call(h.app, "POST", "/api/auth/signin", { body: { password: "whatever123" } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
  });
});
