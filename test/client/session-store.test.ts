// Several clients of one session (tabs of one app): a refresh token is spent when used and the server ends
// the session when a spent one comes back, so clients sharing tokens must not both refresh. With a shared
// store they take turns under a lock and take each other's new tokens. The browser's own localStorage and
// Web Locks are exercised in browser.test.ts; here the store is a Map, the lock the SDK's in-realm one.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import {
  localStorageSessionStore,
  ParleyClient,
  type ParleyClientOptions,
  type ParleyError,
  RestClient,
  type Session,
  type SessionStore,
} from "../../src/client/index.ts";
import { parseSession } from "../../src/client/session-store.ts";
import { CLOSE } from "../../src/realtime/frames.ts";
import { newAccount, waitFor } from "../helpers.ts";
import { record, rejection, type Server, startServer } from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  // No grace for a spent refresh token coming back: what the store prevents is then a revoked session.
  s = await startServer({ ACCESS_TOKEN_EXPIRE_MINUTES: "1", REFRESH_REUSE_GRACE_SECONDS: "0" });
});
afterAll(() => s.stop());

/** One app's storage as its tabs see it: saves reach every other tab's watch, as `storage` events do. */
function sharedStorage() {
  let value: string | null = null;
  const watchers = new Set<{ tab: number; onChange: (session: Session | null) => void }>();
  let tabs = 0;
  return {
    saves: 0,
    get raw() {
      return value;
    },
    /** The store of one tab; without `watch` when `silent` (a store that cannot tell of others' saves). */
    tab(silent = false): SessionStore {
      const tab = ++tabs;
      const shared = this;
      const store: SessionStore = {
        load: () => parseSession(value),
        async save(session) {
          shared.saves++;
          value = session ? JSON.stringify(session) : null;
          for (const w of watchers) if (w.tab !== tab) w.onChange(parseSession(value));
        },
        watch(onChange) {
          const w = { tab, onChange };
          watchers.add(w);
          return () => watchers.delete(w);
        },
      };
      if (silent) delete store.watch;
      return store;
    },
  };
}

/** A fetch that counts the refresh calls that reach the server. */
function countingFetch() {
  const counter = {
    refreshes: 0,
    fetch: (input: URL, init: RequestInit) => {
      if (input.pathname === "/api/auth/refresh") counter.refreshes++;
      return fetch(input, init);
    },
  };
  return counter;
}

function client(opts: Partial<ParleyClientOptions> = {}) {
  const c = new ParleyClient({ baseUrl: s.baseUrl, ...opts });
  s.clients.push(c);
  return c;
}

describe("clients sharing one session", () => {
  it("without a store, two clients refreshing the same tokens end the session (what the store prevents)", async () => {
    const a = client();
    const signed = await a.signup(newAccount());
    const b = client();
    b.adopt({
      user: signed.user,
      session_id: signed.sessionId,
      access_token: signed.accessToken,
      refresh_token: signed.refreshToken,
      token_type: "bearer",
      expires_in: 60,
    });
    const outcomes = await Promise.allSettled([a.refresh(), b.refresh()]);
    const failed = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
    expect(failed).toBeDefined();
    expect((failed.reason as ParleyError).code).toBe("refresh_token_reused");
    // Reuse revoked the session: the tokens the other client got are dead too.
    const winner = outcomes.find((o) => o.status === "fulfilled") as PromiseFulfilledResult<Session>;
    const late = await rejection(a.rest.refresh(winner.value.refreshToken));
    expect(late.status).toBe(401);
  });

  it.each([
    ["a store that tells of others' saves", false],
    ["a store read only under the lock", true],
  ])(
    "with %s, concurrent refreshes spend the refresh token once and both clients keep working",
    async (_, silent) => {
      const storage = sharedStorage();
      const counter = countingFetch();
      const a = client({ store: storage.tab(silent), fetch: counter.fetch });
      const first = await a.signup(newAccount());
      const b = client({ store: storage.tab(silent), fetch: counter.fetch });
      expect((await b.restore())?.refreshToken).toBe(first.refreshToken);

      const [ra, rb] = await Promise.all([a.refresh(), b.refresh()]);
      expect(counter.refreshes).toBe(1);
      expect(ra.refreshToken).not.toBe(first.refreshToken);
      expect(rb.refreshToken).toBe(ra.refreshToken);
      expect(parseSession(storage.raw)?.refreshToken).toBe(ra.refreshToken);
      expect((await a.rest.me()).id).toBe(first.user.id);
      expect((await b.rest.me()).id).toBe(first.user.id);

      // And again, the other way round: still one refresh a turn, the session alive.
      const [rb2, ra2] = await Promise.all([b.refresh(), a.refresh()]);
      expect(counter.refreshes).toBe(2);
      expect(ra2.refreshToken).toBe(rb2.refreshToken);
      expect((await a.rest.refresh(ra2.refreshToken)).user.id).toBe(first.user.id);
    },
  );

  it("refresh timers that fire together refresh once per round and keep the session", async () => {
    const storage = sharedStorage();
    const counter = countingFetch();
    // 1% of a 60 s token: due every ~0.6 s, in both clients at about the same moment.
    const a = client({ store: storage.tab(), fetch: counter.fetch, refreshAt: 0.01 });
    const first = await a.signup(newAccount());
    const b = client({ store: storage.tab(), fetch: counter.fetch, refreshAt: 0.01 });
    await b.restore();
    const seen = new Set<string>();
    await waitFor(() => {
      for (const c of [a, b]) if (c.session) seen.add(c.session.refreshToken);
      return seen.size >= 4 ? true : undefined;
    }, 10_000);
    a.close();
    b.close();
    expect(counter.refreshes).toBeGreaterThanOrEqual(3);
    // No refresh token was spent twice: the session is alive, and the newest token still refreshes it.
    const newest = (a.session?.expiresAt ?? 0) >= (b.session?.expiresAt ?? 0) ? a : b;
    const next = await newest.rest.refresh(newest.session?.refreshToken as string);
    expect(next.user.id).toBe(first.user.id);
  });

  it("a watching client takes the tokens another saved, without a refresh of its own", async () => {
    const storage = sharedStorage();
    const counter = countingFetch();
    const a = client({ store: storage.tab(), fetch: counter.fetch });
    await a.signup(newAccount());
    const b = client({ store: storage.tab(), fetch: counter.fetch });
    await b.restore();
    const next = await a.refresh();
    expect(b.session?.refreshToken).toBe(next.refreshToken);
    expect(b.session?.accessToken).toBe(next.accessToken);
    expect(await b.refresh()).toMatchObject({ refreshToken: expect.any(String) });
    expect(counter.refreshes).toBe(2);
    // A closed client stops watching.
    b.close();
    const after = await a.refresh();
    expect(b.session?.refreshToken).not.toBe(after.refreshToken);
  });

  it("a store that fails to save fails no refresh, and its older tokens are not taken for newer ones", async () => {
    const storage = sharedStorage();
    const tab = storage.tab(true);
    let full = false;
    const store: SessionStore = {
      load: tab.load,
      save(session) {
        if (full) throw new Error("QuotaExceededError");
        return tab.save(session);
      },
    };
    const counter = countingFetch();
    const a = client({ store, fetch: counter.fetch });
    const first = await a.signup(newAccount());
    full = true;
    // The store still holds `first`, whose refresh token each refresh below has spent.
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await a.refresh().catch((err: unknown) => err));
    expect(outcomes.every((o) => (o as Session).sessionId === first.sessionId)).toBe(true);
    expect(counter.refreshes).toBe(3);
    expect(parseSession(storage.raw)?.refreshToken).toBe(first.refreshToken);
    expect((await a.rest.me()).id).toBe(first.user.id);
  });

  it("a store that fails to save fails no sign-in: the client is signed in, on its own", async () => {
    const store: SessionStore = {
      load: () => null,
      save() {
        throw new Error("QuotaExceededError");
      },
    };
    const account = newAccount();
    const a = client({ store });
    const first = await a.signup(account);
    expect(a.session?.sessionId).toBe(first.sessionId);
    const second = await a.signin({ username: account.username, password: account.password });
    expect((await a.rest.me()).id).toBe(second.user.id);
    expect((await a.rest.sessions()).items).toHaveLength(2);
  });

  it("restore: nothing stored, no store option, tokens close to expiry, an ended session", async () => {
    const storage = sharedStorage();
    expect(await client({ store: storage.tab() }).restore()).toBeNull();
    const noStore = await rejection(client().restore());
    expect(noStore.code).toBe("bad_request");

    // Stored tokens about to expire are refreshed before restore() answers.
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    a.close();
    const nearlyExpired = { ...first, expiresAt: Date.now() + 1000 };
    await storage.tab().save(nearlyExpired);
    const b = client({ store: storage.tab() });
    const restored = await b.restore();
    expect(restored?.refreshToken).not.toBe(first.refreshToken);
    expect(restored?.expiresAt).toBeGreaterThan(Date.now() + 50_000);
    expect(parseSession(storage.raw)?.refreshToken).toBe(restored?.refreshToken);

    // A session signed out elsewhere: restore() gives null and clears the store.
    await b.rest.signout();
    await storage.tab().save({ ...(restored as Session), expiresAt: Date.now() });
    const c = client({ store: storage.tab() });
    expect(await c.restore()).toBeNull();
    expect(c.session).toBeNull();
    expect(storage.raw).toBeNull();
  });

  it("a refresh refused for good clears the store's copy of that session: restore() then finds none", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    // Signed out elsewhere with the same tokens, and this client's access token has run out.
    await new RestClient({ baseUrl: s.baseUrl, token: () => first.accessToken }).signout();
    a.session!.expiresAt = Date.now() - 1000;
    expect(await rejection(a.rest.me())).toMatchObject({ status: 401, code: "session_revoked" });
    expect(storage.raw).toBeNull();
    expect(await client({ store: storage.tab() }).restore()).toBeNull();
  });

  it("signout of a session already over elsewhere resolves, and clears it here and in the store", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    await new RestClient({ baseUrl: s.baseUrl, token: () => first.accessToken }).signout();
    await a.signout();
    expect(a.session).toBeNull();
    expect(storage.raw).toBeNull();
  });

  it("a refresh does not put its session over another account's signed in since in another tab", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    const b = client({ store: storage.tab() });
    const other = await b.signup(newAccount());
    const renewed = await a.refresh();
    expect(renewed.sessionId).toBe(first.sessionId);
    expect(parseSession(storage.raw)?.sessionId).toBe(other.sessionId);
    // A tab opened now starts as the account signed in last.
    expect((await client({ store: storage.tab() }).restore())?.sessionId).toBe(other.sessionId);
  });

  it("signout clears the store only while it holds this client's session", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    await a.signup(newAccount());
    const b = client({ store: storage.tab() });
    const other = await b.signup(newAccount()); // another account signed in since, in another tab
    await a.signout();
    expect(parseSession(storage.raw)?.sessionId).toBe(other.sessionId);
    await b.signout();
    expect(storage.raw).toBeNull();
  });
});

describe("the session's user", () => {
  it("follows an update of one's own profile, here, in the store and in another tab of the session", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    const b = client({ store: storage.tab() });
    await b.restore();
    s.h.clock.advance(1000);
    const username = `renamed_${first.user.id.slice(0, 8)}`;
    const updated = await a.rest.users.update(first.user.id, { display_name: "Ada L.", username });
    expect(a.session?.user).toEqual(updated);
    // The store's copy is written under the refresh lock: its tokens are left as they are.
    await waitFor(() => (parseSession(storage.raw)?.user.display_name === "Ada L." ? true : undefined));
    expect(parseSession(storage.raw)).toMatchObject({ refreshToken: first.refreshToken, user: updated });
    expect(b.session?.user.username).toBe(username);
    expect((await client({ store: storage.tab() }).restore())?.user.display_name).toBe("Ada L.");
    // A refresh made after the update keeps it (the server's answer carries the user as it is now).
    expect((await b.refresh()).user.display_name).toBe("Ada L.");
  });

  it("written to the store while another tab refreshes, keeps that refresh's tokens, and the refresh's older user does not undo it", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    const held = heldRefreshes();
    const b = client({ store: storage.tab(), fetch: held.fetch });
    await b.restore();
    // b's refresh is answered (with the user as it was) but not yet read when the update is made and answered.
    const refreshing = b.refresh();
    await waitFor(() => (held.answered === 1 ? true : undefined));
    s.h.clock.advance(1000);
    const updated = await a.rest.users.update(first.user.id, { display_name: "During a refresh" });
    expect(a.session?.user.display_name).toBe("During a refresh");
    held.release();
    // Its answer has the user as it was; this tab takes its tokens and keeps the newer user.
    const renewed = await refreshing;
    await waitFor(() =>
      parseSession(storage.raw)?.user.display_name === "During a refresh" ? true : undefined,
    );
    expect(parseSession(storage.raw)).toMatchObject({ refreshToken: renewed.refreshToken, user: updated });
    for (const c of [a, b])
      expect(c.session).toMatchObject({ refreshToken: renewed.refreshToken, user: updated });
    // No refresh token was spent twice: the session is alive.
    expect((await a.refresh()).user).toEqual(updated);
  });

  it("does not follow an answer about another user", async () => {
    const a = client();
    const mine = await a.signup(newAccount());
    const other = await client().signup(newAccount());
    await a.rest.users.get(other.user.id);
    expect(await rejection(a.rest.users.update(other.user.id, { display_name: "x" }))).toMatchObject({
      code: "forbidden",
    });
    expect(a.session?.user).toEqual(mine.user);
  });
});

describe("another tab", () => {
  it("signing out signs this tab out too: its session ends, and its connection says so once", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    await a.signup(newAccount());
    const b = client({ store: storage.tab(), backoff: { minMs: 10, maxMs: 20 } });
    await b.restore();
    await b.connect({ positions: {} });
    const closes = record(b, "close");
    await a.signout();
    const final = await closes.next((c) => !c.reconnecting);
    expect(final).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    expect(final.error?.code).toBe("session_revoked");
    expect(b.session).toBeNull();
    expect(b.realtime.connected).toBe(false);
    expect((await rejection(b.rest.me())).code).toBe("unauthorized");
    expect(closes.items).toHaveLength(1);
  });

  it("finding the session over (its refresh refused) ends this tab's connection too, though the server keeps it open", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    await a.connect({ positions: {} });
    const closes = record(a, "close");
    const b = client({ store: storage.tab() });
    await b.restore();
    // The refresh token the tabs share is one the server no longer knows (expired and pruned, say); the
    // session is not revoked, so the server has no reason to close a's socket.
    await storage.tab().save({ ...first, refreshToken: "no-longer-known", expiresAt: first.expiresAt + 1 });
    expect(a.session?.refreshToken).toBe("no-longer-known");
    expect((await rejection(b.refresh())).status).toBe(401);
    expect(storage.raw).toBeNull();
    const final = await closes.next((c) => !c.reconnecting);
    expect(final).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    expect(a.session).toBeNull();
    await waitFor(() =>
      s.h.deps.gateway.connections.ofSession(first.sessionId).size === 0 ? true : undefined,
    );
  });

  it("signing out while not connected here signs this tab out all the same, without a request", async () => {
    const storage = sharedStorage();
    const counter = countingFetch();
    const a = client({ store: storage.tab() });
    await a.signup(newAccount());
    const b = client({ store: storage.tab(), fetch: counter.fetch });
    await b.restore();
    await a.signout();
    expect(b.session).toBeNull();
    expect(counter.refreshes).toBe(0);
  });

  it("signing in as someone else, and out again, leaves this tab's session alone", async () => {
    const storage = sharedStorage();
    const a = client({ store: storage.tab() });
    const first = await a.signup(newAccount());
    await a.connect({ positions: {} });
    const closes = record(a, "close");
    const other = client({ store: storage.tab() });
    await other.signup(newAccount());
    await other.signout();
    expect(storage.raw).toBeNull();
    expect(a.session?.sessionId).toBe(first.sessionId);
    expect((await a.rest.me()).id).toBe(first.user.id);
    expect(a.realtime.connected).toBe(true);
    expect(closes.items).toHaveLength(0);
  });
});

/** A fetch whose refresh answers are held (the server has answered; the client has not read it) until released. */
function heldRefreshes() {
  const held = {
    answered: 0,
    release: () => {},
    fetch: async (input: URL, init: RequestInit) => {
      const res = await fetch(input, init);
      if (input.pathname !== "/api/auth/refresh") return res;
      const gate = new Promise<void>((r) => {
        held.release = r;
      });
      held.answered++;
      await gate;
      return res;
    },
  };
  return held;
}

describe("a refresh still on its way", () => {
  it("answered after signout(), does not bring the session back, here or in the store", async () => {
    const storage = sharedStorage();
    const held = heldRefreshes();
    const a = client({ store: storage.tab(), fetch: held.fetch });
    await a.signup(newAccount());
    const refreshing = a.refresh().catch((err: unknown) => err);
    await waitFor(() => (held.answered === 1 ? true : undefined));
    await a.signout();
    held.release();
    expect(await refreshing).toMatchObject({ code: "unauthorized" });
    expect(a.session).toBeNull();
    expect(storage.raw).toBeNull();
  });

  it("answered after close(), keeps its tokens but starts neither the refresh timer nor the store's watch again", async () => {
    const storage = sharedStorage();
    const tab = storage.tab();
    let watching = 0;
    const store: SessionStore = {
      load: tab.load,
      save: tab.save,
      watch(onChange) {
        watching++;
        const off = tab.watch?.(onChange);
        return () => {
          watching--;
          off?.();
        };
      },
    };
    const held = heldRefreshes();
    const a = client({ store, fetch: held.fetch });
    await a.signup(newAccount());
    expect(watching).toBe(1);
    const refreshing = a.refresh();
    await waitFor(() => (held.answered === 1 ? true : undefined));
    a.close();
    expect(watching).toBe(0);
    held.release();
    const renewed = await refreshing;
    expect(a.session?.refreshToken).toBe(renewed.refreshToken);
    expect(parseSession(storage.raw)?.refreshToken).toBe(renewed.refreshToken);
    expect(watching).toBe(0);
    expect((a as unknown as { tokens: { refreshTimer?: unknown } }).tokens.refreshTimer).toBeUndefined();
    // Started again by the app (here a sign-in), it watches and refreshes as before.
    await a.signup(newAccount());
    expect(watching).toBe(1);
    expect((a as unknown as { tokens: { refreshTimer?: unknown } }).tokens.refreshTimer).toBeDefined();
  });

  it("answered after a sign-in to another account, leaves that account's session in place", async () => {
    const storage = sharedStorage();
    const held = heldRefreshes();
    const a = client({ store: storage.tab(), fetch: held.fetch });
    await a.signup(newAccount());
    const refreshing = a.refresh().catch((err: unknown) => err);
    await waitFor(() => (held.answered === 1 ? true : undefined));
    const other = newAccount();
    await client().signup(other);
    const signedIn = await a.signin({ username: other.username, password: other.password });
    held.release();
    await refreshing;
    expect(a.session?.sessionId).toBe(signedIn.sessionId);
    expect(parseSession(storage.raw)?.sessionId).toBe(signedIn.sessionId);
    expect((await a.rest.me()).id).toBe(signedIn.user.id);
  });
});

describe("localStorageSessionStore", () => {
  /** The Storage interface over a Map (Bun has no localStorage). */
  function memoryStorage(): Storage {
    const map = new Map<string, string>();
    return {
      get length() {
        return map.size;
      },
      clear: () => map.clear(),
      getItem: (k) => map.get(k) ?? null,
      key: (i) => [...map.keys()][i] ?? null,
      removeItem: (k) => void map.delete(k),
      setItem: (k, v) => void map.set(k, String(v)),
    };
  }
  const session: Session = {
    user: { id: "u1" } as Session["user"],
    sessionId: "s1",
    accessToken: "a",
    refreshToken: "r",
    expiresAt: 1,
  };

  it("saves, loads and removes a session under its key", async () => {
    const storage = memoryStorage();
    const store = localStorageSessionStore("k", storage);
    expect(await store.load()).toBeNull();
    await store.save(session);
    expect(storage.getItem("k")).toBe(JSON.stringify(session));
    expect(await store.load()).toEqual(session);
    await store.save(null);
    expect(storage.getItem("k")).toBeNull();
  });

  it("reads anything that is not a whole session as none", async () => {
    const storage = memoryStorage();
    const store = localStorageSessionStore("k", storage);
    for (const bad of ["{", "null", "[]", "42", JSON.stringify({ ...session, refreshToken: 7 }), "{}"]) {
      storage.setItem("k", bad);
      expect(await store.load()).toBeNull();
    }
    const { user: _, ...noUser } = session;
    storage.setItem("k", JSON.stringify(noUser));
    expect(await store.load()).toBeNull();
  });

  it("refuses to be made where there is no localStorage", () => {
    expect(() => localStorageSessionStore()).toThrow("no localStorage");
  });
});
