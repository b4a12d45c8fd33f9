// Account pre-hijacking: someone signs up with another person's email address and a password of their
// choosing. The first magic link used proves the mailbox: the address becomes verified, and the password,
// the sessions and the links of whoever came before end.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, type Harness, harness, mailedLinkToken, newAccount, signup } from "../../helpers.ts";
import { connect, type TestSocket } from "../../realtime/ws-client.ts";

let h: Harness;
let base: string;
const open: TestSocket[] = [];
beforeAll(async () => {
  h = await harness({ LOCKOUT_THRESHOLD: "3" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

type Login = { email?: string; username?: string; password: string };
const signin = (body: Login) => call(h.app, "POST", "/api/auth/signin", { body });
const verify = (token: string) => call(h.app, "POST", "/api/auth/magic-link/verify", { body: { token } });
const me = (token: string) => call(h.app, "GET", "/api/auth/me", { token });
const refresh = (refresh_token: string) =>
  call(h.app, "POST", "/api/auth/refresh", { body: { refresh_token } });
const changePassword = (token: string, body: Record<string, unknown>) =>
  call(h.app, "POST", "/api/auth/change-password", { token, body });

async function socket(user: { id: string; session_id: string; token: string }): Promise<TestSocket> {
  const s = await connect(`${base}/ws/${user.id}/${user.session_id}`, [
    "parley.json",
    `bearer.${user.token}`,
  ]);
  open.push(s);
  await s.next((f) => f.type === "hello");
  return s;
}

/** The owner of the mailbox signs in by a link mailed to it; answers their token response. */
async function ownerSignsIn(email: string) {
  const res = await verify(await mailedLinkToken(h, email));
  expect(res.status).toBe(200);
  return res.body;
}

describe("the first magic-link sign-in of an account whose email was never proved", () => {
  it("ends the squatter's hold: sessions, refresh tokens, password, sockets and links; the owner then sets a password", async () => {
    // The squatter signs up with the owner's address, signs in on a second device and opens a socket.
    const squatter = await signup(h.app);
    expect(squatter.user).toMatchObject({ email_verified: false, has_password: true });
    const second = await signin({ username: squatter.username, password: squatter.password });
    expect(second.status).toBe(200);
    const ws = await socket(squatter);
    // A link asked for earlier (by anyone: it goes to the owner's mailbox), left unused.
    const earlier = await mailedLinkToken(h, squatter.email);

    const owner = await ownerSignsIn(squatter.email);
    expect(owner.user).toMatchObject({ id: squatter.id, email_verified: true, has_password: false });

    expect((await ws.closed).code).toBe(4501);
    for (const token of [squatter.token, second.body.access_token]) {
      expect((await me(token)).body.error.code).toBe("session_revoked");
    }
    for (const token of [squatter.refresh_token, second.body.refresh_token]) {
      expect((await refresh(token)).body.error.code).toBe("session_revoked");
    }
    // The squatter's password is answered exactly as a wrong one is.
    const theirs = await signin({ email: squatter.email, password: squatter.password });
    const wrong = await signin({ email: squatter.email, password: "not even close to it" });
    expect([theirs.status, theirs.body]).toEqual([401, wrong.body]);
    expect(wrong.body.error.code).toBe("invalid_credentials");
    expect((await verify(earlier)).body.error.code).toBe("invalid_token");

    const sessions = await call(h.app, "GET", "/api/auth/sessions", { token: owner.access_token });
    expect(sessions.body.items.map((s: { id: string }) => s.id)).toEqual([owner.session_id]);
    expect((await me(owner.access_token)).body).toMatchObject({ email_verified: true, has_password: false });

    // The owner sets a password without a current one, and signs in with it.
    const mine = "the owner's own passphrase 7";
    expect((await changePassword(owner.access_token, { new_password: mine })).status).toBe(200);
    expect((await me(owner.access_token)).body).toMatchObject({ email_verified: true, has_password: true });
    const back = await signin({ email: squatter.email, password: mine });
    expect(back.status).toBe(200);
    expect(back.body.user).toMatchObject({ id: squatter.id, email_verified: true, has_password: true });
    expect((await signin({ email: squatter.email, password: squatter.password })).status).toBe(401);
  });

  it("counts sign-ins against an account without a password as failures, and locks it like any other", async () => {
    const squatter = await signup(h.app);
    await ownerSignsIn(squatter.email);
    for (let i = 0; i < 3; i++) {
      const res = await signin({ username: squatter.username, password: squatter.password });
      expect([res.status, res.body.error.code]).toEqual([401, "invalid_credentials"]);
    }
    const locked = await signin({ username: squatter.username, password: squatter.password });
    expect([locked.status, locked.body.error.code]).toEqual([429, "account_locked"]);
  });
});

describe("a magic-link sign-in once the email is verified", () => {
  it("changes nothing: other sessions, the password and unused links all keep working", async () => {
    const account = await signup(h.app);
    const owner = await ownerSignsIn(account.email);
    const password = "the owner's own passphrase 8";
    expect((await changePassword(owner.access_token, { new_password: password })).status).toBe(200);
    const phone = await signin({ email: account.email, password });
    expect(phone.status).toBe(200);
    const ws = await socket({
      id: account.id,
      session_id: phone.body.session_id,
      token: phone.body.access_token,
    });
    const spare = await mailedLinkToken(h, account.email);

    const later = await ownerSignsIn(account.email);
    expect(later.user).toMatchObject({ email_verified: true, has_password: true });
    expect((await me(owner.access_token)).status).toBe(200);
    expect((await me(phone.body.access_token)).status).toBe(200);
    expect((await refresh(phone.body.refresh_token)).status).toBe(200);
    expect((await signin({ email: account.email, password })).status).toBe(200);
    expect((await verify(spare)).status).toBe(200);
    ws.send({ type: "ping", ref: "still-open" });
    expect((await ws.next((f) => f.type === "pong")).ref).toBe("still-open");
    // And without a password (never set after the takeover), a later link leaves the sessions alone too.
    const other = await signup(h.app);
    const first = await ownerSignsIn(other.email);
    await ownerSignsIn(other.email);
    expect((await me(first.access_token)).status).toBe(200);
  });
});

describe("POST /api/auth/change-password without current_password", () => {
  it("is refused while the account has a password: 422 naming current_password, and the password stays", async () => {
    const user = await signup(h.app);
    const res = await changePassword(user.token, { new_password: "a brand new passphrase 9" });
    expect([res.status, res.body.error.code, res.body.error.field]).toEqual([
      422,
      "validation_failed",
      "current_password",
    ]);
    expect((await signin({ email: user.email, password: user.password })).status).toBe(200);
    expect((await signin({ email: user.email, password: "a brand new passphrase 9" })).status).toBe(401);
  });

  it("checks a current_password given to an account without one like a wrong one (401), and a weak new one (422)", async () => {
    const user = await signup(h.app);
    const owner = await ownerSignsIn(user.email);
    const given = await changePassword(owner.access_token, {
      current_password: user.password,
      new_password: "a brand new passphrase 10",
    });
    expect([given.status, given.body.error.code]).toEqual([401, "invalid_credentials"]);
    const weak = await changePassword(owner.access_token, { new_password: "password1" });
    expect([weak.status, weak.body.error.code]).toEqual([422, "weak_password"]);
    expect((await me(owner.access_token)).body.has_password).toBe(false);
  });

  it("sets a first password from any session opened by a magic link, through its refreshes too", async () => {
    const user = await signup(h.app);
    await ownerSignsIn(user.email);
    // A second link on the now verified account: its session is opened by a link as well.
    const later = await ownerSignsIn(user.email);
    const refreshed = await refresh(later.refresh_token);
    expect(refreshed.status).toBe(200);
    const mine = "the owner's own passphrase 12";
    expect((await changePassword(refreshed.body.access_token, { new_password: mine })).status).toBe(200);
    expect((await signin({ email: user.email, password: mine })).status).toBe(200);
  });

  it("refuses bad bodies with 422 naming the field", async () => {
    const user = await signup(h.app);
    const owner = await ownerSignsIn(user.email);
    const cases: [Record<string, unknown>, string][] = [
      [{ current_password: null, new_password: "a brand new passphrase 11" }, "current_password"],
      [{ current_password: 42, new_password: "a brand new passphrase 11" }, "current_password"],
      [{}, "new_password"],
      [{ new_password: 12345678 }, "new_password"],
    ];
    for (const [body, field] of cases) {
      const res = await changePassword(owner.access_token, body);
      expect([res.status, res.body.error.code, res.body.error.field]).toEqual([
        422,
        "validation_failed",
        field,
      ]);
    }
    expect((await me(owner.access_token)).body.has_password).toBe(false);
  });
});

describe("who sees the verified state", () => {
  it("shows email_verified and has_password to the user themself only", async () => {
    const alice = await signup(h.app);
    const bob = await signup(h.app);
    expect((await me(alice.token)).body).toMatchObject({ email_verified: false, has_password: true });
    const seen = await call(h.app, "GET", `/api/users/${alice.id}`, { token: bob.token });
    expect(seen.status).toBe(200);
    expect(seen.body).not.toHaveProperty("email_verified");
    expect(seen.body).not.toHaveProperty("has_password");
    const listed = await call(h.app, "GET", `/api/users?q=${alice.username}`, { token: bob.token });
    expect(listed.body.items[0]).toMatchObject({ id: alice.id });
    expect(listed.body.items[0]).not.toHaveProperty("email_verified");
    const own = await call(h.app, "GET", `/api/users/${alice.id}`, { token: alice.token });
    expect(own.body).toMatchObject({ email_verified: false, has_password: true });
  });
});

describe("races with the takeover", () => {
  /**
   * Runs `during` once, the first time `repo[method]` is called while armed, before that call goes on;
   * answers a function that disarms it.
   */
  function once<T extends object, K extends keyof T>(repo: T, method: K, during: () => Promise<unknown>) {
    const original = repo[method] as (...args: unknown[]) => Promise<unknown>;
    let armed = true;
    (repo as Record<K, unknown>)[method] = async (...args: unknown[]) => {
      if (armed) {
        armed = false;
        await during();
      }
      return original.apply(repo, args);
    };
    return () => {
      (repo as Record<K, unknown>)[method] = original;
    };
  }

  it("ends a squatter's session opened on the password while the owner's link was taking the account over", async () => {
    const squatter = await signup(h.app);
    const link = await mailedLinkToken(h, squatter.email);
    let owner: Awaited<ReturnType<typeof verify>> | undefined;
    // The squatter's password has been checked; before their session is stored, the owner's link lands.
    const restore = once(h.deps.store.sessions, "create", async () => {
      restore();
      owner = await verify(link);
    });
    try {
      const res = await signin({ email: squatter.email, password: squatter.password });
      expect([res.status, res.body.error.code]).toEqual([401, "invalid_credentials"]);
    } finally {
      restore();
    }
    expect(owner?.status).toBe(200);
    const live = await h.deps.store.sessions.listActive(squatter.id, h.clock.now());
    expect(live.map((s) => s.id)).toEqual([owner?.body.session_id]);
  });

  it("does not let a squatter's password change, checked before the takeover, land after it", async () => {
    const squatter = await signup(h.app);
    const link = await mailedLinkToken(h, squatter.email);
    let owner: Awaited<ReturnType<typeof verify>> | undefined;
    const restore = once(h.deps.store.users, "update", async () => {
      restore();
      owner = await verify(link);
    });
    try {
      const res = await changePassword(squatter.token, {
        current_password: squatter.password,
        new_password: "the squatter's next passphrase",
      });
      expect([res.status, res.body.error.code]).toEqual([401, "invalid_credentials"]);
    } finally {
      restore();
    }
    expect((await me(owner?.body.access_token)).body).toMatchObject({ has_password: false });
    expect((await signin({ email: squatter.email, password: "the squatter's next passphrase" })).status).toBe(
      401,
    );
  });

  it("ends the squatter's sessions before the password goes: none can set a password in between", async () => {
    const squatter = await signup(h.app);
    const link = await mailedLinkToken(h, squatter.email);
    let between: Awaited<ReturnType<typeof changePassword>> | undefined;
    // The password is gone and the owner's session is being stored: the squatter tries to set one.
    const restore = once(h.deps.store.sessions, "create", async () => {
      restore();
      between = await changePassword(squatter.token, { new_password: "the squatter's next passphrase" });
    });
    let owner: Awaited<ReturnType<typeof verify>>;
    try {
      owner = await verify(link);
    } finally {
      restore();
    }
    expect(owner.status).toBe(200);
    expect([between?.status, between?.body.error.code]).toEqual([401, "session_revoked"]);
    expect((await me(owner.body.access_token)).body).toMatchObject({ has_password: false });
  });

  it("refuses a first password from a session opened on the password the takeover was removing (403 magic_link_required)", async () => {
    const squatter = await signup(h.app);
    const link = await mailedLinkToken(h, squatter.email);
    const { users, sessions } = h.deps.store;
    let opened: Awaited<ReturnType<typeof signin>> | undefined;
    let between: Awaited<ReturnType<typeof changePassword>> | undefined;
    const next = "the squatter's next passphrase";
    // The takeover has ended the sessions there were and is about to remove the password: the squatter
    // signs in with it, and their session is live once the takeover goes on.
    const restoreUsers = once(users, "update", async () => {
      restoreUsers();
      opened = await signin({ email: squatter.email, password: squatter.password });
      // The password is gone and the owner's session is being stored, before the takeover's second round
      // of revocations: the squatter sets a "first" password from the session they just opened.
      const restoreSessions = once(sessions, "create", async () => {
        restoreSessions();
        between = await changePassword(opened?.body.access_token, { new_password: next });
      });
    });
    let owner: Awaited<ReturnType<typeof verify>>;
    try {
      owner = await verify(link);
    } finally {
      restoreUsers();
    }
    expect(opened?.status).toBe(200);
    expect(owner.status).toBe(200);
    expect([between?.status, between?.body.error?.code]).toEqual([403, "magic_link_required"]);
    expect((await me(owner.body.access_token)).body).toMatchObject({ has_password: false });
    expect((await users.byId(squatter.id))?.password_hash).toBeNull();
    expect((await signin({ email: squatter.email, password: next })).status).toBe(401);
    // The squatter's session ended with the takeover's second round; the owner's is the only one.
    expect((await me(opened?.body.access_token)).body.error.code).toBe("session_revoked");
    const live = await sessions.listActive(squatter.id, h.clock.now());
    expect(live.map((s) => s.id)).toEqual([owner.body.session_id]);
  });

  it("reads the session from the store before setting a first password: a takeover on another node ended it", async () => {
    const squatter = await signup(h.app);
    expect((await me(squatter.token)).status).toBe(200); // this node now holds the session as live
    // Another node's takeover, straight in the shared store; this node has not been told yet.
    const now = h.clock.now();
    await h.deps.store.sessions.revokeAllForUser(squatter.id, now);
    await h.deps.store.users.update(squatter.id, {
      password_hash: null,
      email_verified_at: now,
      updated_at: now,
    });
    const res = await changePassword(squatter.token, { new_password: "the squatter's next passphrase" });
    expect([res.status, res.body.error.code]).toEqual([401, "session_revoked"]);
    expect((await h.deps.store.users.byId(squatter.id))?.password_hash).toBeNull();
  });

  it("does not put a password back by re-hashing it at another cost after the takeover removed it", async () => {
    const squatter = await signup(h.app);
    // Stored at another cost: the next sign-in re-hashes it.
    const cheaper = await Bun.password.hash(squatter.password, {
      algorithm: "argon2id",
      memoryCost: 8192,
      timeCost: 5,
    });
    await h.deps.store.users.update(squatter.id, { password_hash: cheaper, updated_at: h.clock.now() });
    const link = await mailedLinkToken(h, squatter.email);
    const users = h.deps.store.users;
    const original = users.update;
    // The re-check passed; the owner's link lands just before the re-hash is written.
    users.update = async (id, patch, only) => {
      if (patch.password_hash && only?.password_hash === cheaper) {
        users.update = original;
        expect((await verify(link)).status).toBe(200);
      }
      return original.call(users, id, patch, only);
    };
    try {
      await signin({ email: squatter.email, password: squatter.password });
    } finally {
      users.update = original;
    }
    expect((await users.byId(squatter.id))?.password_hash).toBeNull();
  });
});

describe("a new account", () => {
  it("starts not verified, with a password", async () => {
    const res = await call(h.app, "POST", "/api/auth/signup", { body: newAccount() });
    expect(res.status).toBe(201);
    expect(res.body.user).toMatchObject({ email_verified: false, has_password: true });
  });
});
