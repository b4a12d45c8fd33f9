// The SDK's REST client against a real server: accounts, conversations, messages and typed errors.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ParleyClient, type ParleyError, RestClient } from "../../src/client/index.ts";
import { mailedLinkToken, newAccount, waitFor } from "../helpers.ts";
import { rejection, type Server, startServer } from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  s = await startServer({ ACCESS_TOKEN_EXPIRE_MINUTES: "1" });
});
afterAll(() => s.stop());

describe("REST client", () => {
  it("refuses a base URL that is not http(s), naming the option", () => {
    expect(() => new RestClient({ baseUrl: "nope" })).toThrow("baseUrl");
    expect(() => new ParleyClient({ baseUrl: "ftp://x" })).toThrow("baseUrl");
    expect(() => new ParleyClient({ baseUrl: "http://x", refreshAt: 2 })).toThrow("refreshAt");
  });

  it("signs up, signs in on a new session, reads me, refreshes and signs out", async () => {
    const account = newAccount();
    const a = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(a);
    const first = await a.signup(account);
    expect(first.user.username).toBe(account.username);
    expect((await a.rest.me()).email).toBe(account.email);

    const b = new ParleyClient({ baseUrl: `${s.baseUrl}/` });
    s.clients.push(b);
    const second = await b.signin({ username: account.username, password: account.password });
    expect(second.sessionId).not.toBe(first.sessionId);

    const refreshed = await b.refresh();
    expect(refreshed.refreshToken).not.toBe(second.refreshToken);
    expect((await b.rest.me()).id).toBe(first.user.id);

    await b.signout();
    expect(b.session).toBeNull();
    const err = await rejection(b.rest.refresh(refreshed.refreshToken));
    expect(err.status).toBe(401);
  });

  it("changes the password: the account's other sessions end, and this client keeps working", async () => {
    const account = newAccount();
    const a = new ParleyClient({ baseUrl: s.baseUrl });
    const b = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(a, b);
    await a.signup(account);
    await b.signin({ username: account.username, password: account.password });
    const next = `${account.password} and more`;
    expect(await rejection(a.rest.changePassword("not it at all", next))).toMatchObject({
      status: 401,
      code: "invalid_credentials",
    });
    expect(await a.rest.changePassword(account.password, next)).toEqual({ status: "ok" });
    expect(await rejection(b.rest.me())).toMatchObject({ status: 401, code: "session_revoked" });
    expect((await a.rest.me()).id).toBe(a.session!.user.id);
    await a.refresh();
    expect((await a.rest.sessions()).items.map((x) => x.current)).toEqual([true]);
    const c = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(c);
    await c.signin({ username: account.username, password: next });
    // One device ends another's session.
    await a.rest.deleteSession(c.session!.sessionId);
    expect(await rejection(c.rest.me())).toMatchObject({ code: "session_revoked" });
  });

  it("sets a first password without the current one after a magic link took the account over, and not while one exists", async () => {
    const account = newAccount();
    const squatter = new ParleyClient({ baseUrl: s.baseUrl });
    const owner = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(squatter, owner);
    await squatter.signup(account);
    expect(squatter.session!.user).toMatchObject({ email_verified: false, has_password: true });
    expect(await rejection(squatter.rest.changePassword(undefined, "a password of my own 1"))).toMatchObject({
      status: 422,
      code: "validation_failed",
    });
    const session = owner.adopt(await owner.rest.verifyMagicLink(await mailedLinkToken(s.h, account.email)));
    expect(session.user).toMatchObject({ email_verified: true, has_password: false });
    expect(await rejection(squatter.rest.me())).toMatchObject({ code: "session_revoked" });
    expect(await owner.rest.changePassword(undefined, "a password of my own 1")).toEqual({ status: "ok" });
    expect(await owner.rest.me()).toMatchObject({ has_password: true });
    expect(owner.session!.user).toMatchObject({ has_password: true });
  });

  it("verifies the address with the link mailed at sign-up, and resends one until it is", async () => {
    const account = newAccount();
    const a = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(a);
    await a.signup(account);
    expect(await a.rest.resendVerification()).toEqual({ status: "accepted" });
    await s.h.deps.auth.settled();
    const mails = (await Bun.file(`${s.h.dataDir}/outbox.jsonl`).text()).split("\n").filter(Boolean);
    const tokens = mails
      .map((l) => JSON.parse(l) as { to: string; text: string })
      .filter((m) => m.to === account.email)
      .map((m) => /\/auth\/verify-email\?token=([A-Za-z0-9_-]+)/.exec(m.text)?.[1]);
    expect(tokens).toHaveLength(2);
    expect(await a.rest.verifyEmail(tokens[0] ?? "")).toMatchObject({
      email_verified: true,
      has_password: true,
    });
    expect(a.session!.user).toMatchObject({ email_verified: true });
    expect(await rejection(a.rest.verifyEmail(tokens[0] ?? ""))).toMatchObject({
      status: 401,
      code: "invalid_token",
    });
    expect(await rejection(a.rest.resendVerification())).toMatchObject({
      status: 409,
      code: "already_verified",
    });
  });

  it("throws ParleyError with the status and code of the error body", async () => {
    const a = await s.client();
    const wrong = await rejection(
      a.rest.signin({ username: a.session!.user.username, password: "wrong pass!" }),
    );
    expect(wrong).toMatchObject({ status: 401, code: "invalid_credentials" });
    const missing = await rejection(a.rest.conversations.get("nope"));
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
    const invalid = await rejection(
      a.rest.conversations.create({ conversation_type: "group", participant_ids: ["unknown-user"] }),
    );
    expect(invalid.status).toBe(422);
    const anonymous = new RestClient({ baseUrl: s.baseUrl });
    expect(await rejection(anonymous.me())).toMatchObject({ status: 401, code: "unauthorized" });
    const offline = new RestClient({ baseUrl: "http://127.0.0.1:1" });
    expect((await rejection(offline.me())).code).toBe("network");
  });

  it("gives a 429's Retry-After as details.retry_after (seconds), from the header when the body has none", async () => {
    const a = await s.client();
    const username = a.session!.user.username;
    let locked: ParleyError | undefined;
    for (let i = 0; i < 10 && !locked; i++) {
      const err = await rejection(a.rest.signin({ username, password: "wrong pass!" }));
      if (err.code === "account_locked") locked = err;
    }
    expect(locked).toMatchObject({ status: 429, code: "account_locked" });
    expect(locked!.details.retry_after).toBeGreaterThan(0);
  });

  it("creates, lists and reads conversations, and lists users", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await a.rest.conversations.create({
      conversation_type: "group",
      name: "team",
      participant_ids: [b.session!.user.id],
    });
    expect(conv.participant_ids).toContain(b.session!.user.id);
    expect((await b.rest.conversations.get(conv.id)).name).toBe("team");
    expect((await b.rest.conversations.list()).items.map((c) => c.id)).toContain(conv.id);
    expect((await b.rest.conversations.all()).map((c) => c.id)).toContain(conv.id);
    const users = await a.rest.users.list({ q: b.session!.user.username });
    expect(users.items.map((u) => u.id)).toEqual([b.session!.user.id]);
    const c = await s.client();
    const added = await a.rest.conversations.addParticipant(conv.id, c.session!.user.id);
    expect(added).toMatchObject({ user_id: c.session!.user.id, role: "member" });
    expect(await a.rest.conversations.setRole(conv.id, c.session!.user.id, "admin")).toMatchObject({
      role: "admin",
    });
    expect(await c.rest.magicLink(c.session!.user.email as string)).toEqual({ status: "accepted" });
  });

  it("pages a conversation's members, and shows a channel's reader its owner and themself alone", async () => {
    const [owner, r1, r2] = [await s.client(), await s.client(), await s.client()];
    const [me, one, two] = [owner.session!.user.id, r1.session!.user.id, r2.session!.user.id];
    const channel = await owner.rest.conversations.create({
      conversation_type: "channel",
      participant_ids: [one, two],
    });
    expect([channel.participant_ids, channel.member_count]).toEqual([[me], 3]);
    const seen = await r1.rest.conversations.get(channel.id);
    expect([seen.participant_ids.sort(), seen.member_count]).toEqual([[me, one].sort(), 3]);
    const first = await owner.rest.conversations.participants(channel.id, { limit: 2 });
    expect(first.items).toHaveLength(2);
    const rest = await owner.rest.conversations.participants(channel.id, {
      cursor: first.next_cursor as string,
    });
    expect([rest.items.length, rest.next_cursor]).toEqual([1, null]);
    expect((await owner.rest.conversations.allParticipants(channel.id)).map((p) => p.user_id)).toEqual(
      [me, one, two].sort(),
    );
    expect(await rejection(r2.rest.conversations.participants(channel.id))).toMatchObject({
      status: 403,
      code: "forbidden",
    });
    expect(await rejection(owner.rest.conversations.participants(channel.id, { limit: 201 }))).toMatchObject({
      status: 422,
      code: "validation_failed",
    });
  });

  it("reads a channel message's receipts: counts for anyone in it, pages of who has it for its owner", async () => {
    const [owner, r1, r2, r3] = [await s.client(), await s.client(), await s.client(), await s.client()];
    const readers = [r1, r2, r3].map((r) => r.session!.user.id);
    const channel = await owner.rest.conversations.create({
      conversation_type: "channel",
      participant_ids: readers,
    });
    const sent = await owner.rest.messages.send(channel.id, { content: "news" });
    await r1.rest.messages.read(channel.id, sent.seq);
    await r2.rest.messages.page(channel.id);
    const counts = { recipients: 3, delivered: 2, read: 1 };
    // Pages of two members by user id, those it was sent to of them (not its sender): two pages or three.
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await owner.rest.messages.receipts(sent.id, { limit: 2, cursor });
      expect(page.items.length).toBeLessThanOrEqual(2);
      expect(page.counts).toEqual(counts);
      listed.push(...page.items.map((r) => r.user_id));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    expect(listed).toEqual([...readers].sort());
    const mine = await r2.rest.messages.receipts(sent.id);
    expect(mine.items.map((r) => [r.user_id, r.delivered_at !== null, r.read_at !== null])).toEqual([
      [r2.session!.user.id, true, false],
    ]);
    expect([mine.next_cursor, mine.counts]).toEqual([null, counts]);
    expect(await rejection(owner.rest.messages.receipts(sent.id, { cursor: "nope" }))).toMatchObject({
      status: 422,
      code: "validation_failed",
    });
  });

  it("lists every conversation with all(), however their activity moves them while it pages", async () => {
    const a = await s.client();
    const made: string[] = [];
    for (let i = 0; i < 101; i++)
      made.push((await a.rest.conversations.create({ conversation_type: "group", participant_ids: [] })).id);
    // Between its pages of 100, the one not on the first gets a message: by activity it would move to the top.
    const list = a.rest.conversations.list;
    a.rest.conversations.list = async (q = {}) => {
      const page = await list(q);
      if (!q.cursor) {
        const listed = new Set(page.items.map((c) => c.id));
        s.h.clock.advance(1000);
        for (const id of made.filter((m) => !listed.has(m)))
          await a.rest.messages.send(id, { content: "moved" });
      }
      return page;
    };
    expect((await a.rest.conversations.all()).map((c) => c.id).sort()).toEqual([...made].sort());
  });

  it("sends, pages, edits, deletes, reacts, reads and catches up on messages", async () => {
    const [a, b] = [await s.client(), await s.client()];
    const conv = await a.rest.conversations.create({
      conversation_type: "dm",
      participant_ids: [b.session!.user.id],
    });
    const m1 = await a.rest.messages.send(conv.id, { content: "one", client_msg_id: "c-1" });
    const again = await a.rest.messages.send(conv.id, { content: "one", client_msg_id: "c-1" });
    expect(again.id).toBe(m1.id);
    const m2 = await b.rest.messages.send(conv.id, { content: "two" });
    const page = await b.rest.messages.page(conv.id);
    expect(page.items.map((m) => m.content)).toEqual(["one", "two"]);
    expect((await b.rest.messages.page(conv.id, { after: m1.seq })).items.map((m) => m.id)).toEqual([m2.id]);

    const edited = await a.rest.messages.edit(m1.id, "one!");
    expect(edited.content).toBe("one!");
    await b.rest.messages.react(m1.id, "👍");
    await b.rest.messages.react(m1.id, "🎉");
    await b.rest.messages.react(m1.id, "🎉", "remove");
    await b.rest.messages.delete(m2.id);
    expect(await rejection(b.rest.messages.edit(m1.id, "not mine"))).toMatchObject({ code: "forbidden" });

    const events = await b.rest.messages.events(conv.id, { after: m2.seq });
    expect(events.has_more).toBe(false);
    expect(events.items.map((m) => [m.id, m.deleted])).toEqual([
      [m1.id, false],
      [m2.id, true],
    ]);
    expect(events.items[0]!.reactions).toEqual([{ user_id: b.session!.user.id, emoji: "👍" }]);

    expect((await b.rest.messages.read(conv.id, m1.seq)).last_read_seq).toBe(m1.seq);
    const receipts = await a.rest.messages.receipts(m1.id);
    expect(receipts.items.find((r) => r.user_id === b.session!.user.id)?.read_at).not.toBeNull();
    // A dm's: the members it was sent to alone, no counts.
    expect(Object.keys(receipts)).toEqual(["items"]);
  });

  it.each([
    // The connection dropped after the server had stored it.
    [
      "network",
      0,
      (): Response => {
        throw new TypeError("connection reset");
      },
    ],
    // A proxy gave up waiting, after the server had stored it.
    ["bad_response", 504, () => new Response("<html>504 Gateway Time-out</html>", { status: 504 })],
  ] as const)(
    "a message send whose answer was lost (%s) names its client_msg_id, and sending it again stores it once",
    async (code, status, lose) => {
      let losing = true;
      const [a, b] = [
        await s.client({
          fetch: async (url, init) => {
            const res = await fetch(url, init);
            if (losing && init.method === "POST" && url.pathname.endsWith("/messages")) {
              losing = false;
              return lose();
            }
            return res;
          },
        }),
        await s.client(),
      ];
      const conv = await a.rest.conversations.create({
        conversation_type: "dm",
        participant_ids: [b.session!.user.id],
      });
      const lost = await rejection(a.rest.messages.send(conv.id, { content: "hello" }));
      expect(lost.code).toBe(code);
      expect(lost.status).toBe(status);
      const id = lost.details.client_msg_id as string;
      expect(typeof id).toBe("string");
      const again = await a.rest.messages.send(conv.id, { content: "hello", client_msg_id: id });
      expect((await b.rest.messages.page(conv.id)).items.map((m) => m.id)).toEqual([again.id]);
    },
  );

  it("refuses a body that is no JSON (a BigInt) with bad_request, sending nothing", async () => {
    const calls: string[] = [];
    const c = await s.client({
      fetch: (url, init) => {
        calls.push(url.pathname);
        return fetch(url, init);
      },
    });
    const conv = await c.rest.conversations.create({ conversation_type: "group", participant_ids: [] });
    calls.length = 0;
    const err = await rejection(c.rest.conversations.update(conv.id, { name: 1n } as never));
    expect(err.code).toBe("bad_request");
    expect(calls).toEqual([]);
  });

  it("refreshes an access token past its time before a call, as after a device slept through its timers", async () => {
    const paths: string[] = [];
    const c = await s.client({
      fetch: (url, init) => {
        paths.push(url.pathname);
        return fetch(url, init);
      },
    });
    const first = c.session!;
    // Both clocks moved on a minute (the token's whole life) while the refresh timer did not run.
    s.h.clock.advance(61_000);
    first.expiresAt = Date.now() - 1000;
    paths.length = 0;
    expect((await c.rest.me()).id).toBe(first.user.id);
    expect(paths).toEqual(["/api/auth/refresh", "/api/auth/me"]);
    expect(c.session!.refreshToken).not.toBe(first.refreshToken);
  });

  it("refreshes once and calls again when the server finds the token expired, for calls made together", async () => {
    const paths: string[] = [];
    const c = await s.client({
      fetch: (url, init) => {
        paths.push(url.pathname);
        return fetch(url, init);
      },
    });
    // The server's clock is ahead of ours: a token we think has most of its life left is expired there.
    s.h.clock.advance(61_000);
    paths.length = 0;
    const [me, list] = await Promise.all([c.rest.me(), c.rest.conversations.list()]);
    expect(me.id).toBe(c.session!.user.id);
    expect(list.items).toEqual([]);
    expect(paths.filter((p) => p === "/api/auth/refresh")).toHaveLength(1);
    expect(paths.filter((p) => p === "/api/auth/me")).toHaveLength(2);
    // A session that is over is not retried: the refresh's refusal is the answer.
    await c.rest.signout();
    s.h.clock.advance(61_000);
    expect(await rejection(c.rest.me())).toMatchObject({ status: 401, code: "session_revoked" });
  });

  it("does not ask again for a refresh refused for good: later calls fail with its code at once", async () => {
    const paths: string[] = [];
    const c = new ParleyClient({
      baseUrl: s.baseUrl,
      fetch: (url, init) => {
        paths.push(url.pathname);
        return fetch(url, init);
      },
    });
    s.clients.push(c);
    const account = newAccount();
    await c.signup(account);
    // Signed out elsewhere (the same tokens in another process), and the access token has run out.
    await new RestClient({ baseUrl: s.baseUrl, token: () => c.session?.accessToken }).signout();
    s.h.clock.advance(61_000);
    paths.length = 0;
    expect(await rejection(c.rest.me())).toMatchObject({ status: 401, code: "session_revoked" });
    expect(paths).toEqual(["/api/auth/me", "/api/auth/refresh"]);
    // Each refresh counts against the sign-in rate limit of the address: asked again at every call, a
    // polling app would lock its user out of signing in again.
    for (let i = 0; i < 3; i++) {
      expect(await rejection(c.rest.me())).toMatchObject({ code: "session_revoked" });
      expect(await rejection(c.refresh())).toMatchObject({ code: "session_revoked" });
    }
    expect(paths.filter((p) => p === "/api/auth/refresh")).toHaveLength(1);
    // Signed in again, the client works as before.
    const again = await c.signin({ username: account.username, password: account.password });
    expect((await c.rest.me()).id).toBe(again.user.id);
  });

  it("tries a refresh whose answer was lost again soon, within the server's grace, not at the next timer", async () => {
    let lost = 0;
    const c = await s.client({
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        // The server spent the refresh token and answered; the answer never arrives.
        if (url.pathname === "/api/auth/refresh" && lost++ === 0) throw new TypeError("connection reset");
        return res;
      },
    });
    const first = c.session!;
    // The server's clock is ahead: the call's token is expired there, and its refresh's answer is lost.
    s.h.clock.advance(61_000);
    expect((await rejection(c.rest.me())).code).toBe("network");
    // Nothing else happens in the app; the refresh timer is not due for another ~48 s, past the grace.
    await waitFor(() => (c.session!.refreshToken !== first.refreshToken ? true : undefined), 10_000);
    expect(lost).toBe(2);
    expect((await c.rest.me()).id).toBe(first.user.id);
    // The second try comes 5 s after the first: past the runner's default 5 s for a test.
  }, 15_000);

  it("tries a refresh lost in a dead link again within the server's 20 s grace, though restTimeoutMs is 30 s", async () => {
    const refreshes: number[] = [];
    const c = await s.client({
      fetch: async (url, init) => {
        if (url.pathname !== "/api/auth/refresh") return fetch(url, init);
        refreshes.push(Date.now());
        const res = await fetch(url, init);
        if (refreshes.length > 1) return res;
        // The server spent the token and answered; the answer is lost and the request hangs.
        return new Promise<Response>(() => {});
      },
    });
    const first = c.session!;
    void c.refresh().catch(() => {});
    await waitFor(() => (c.session!.refreshToken !== first.refreshToken ? true : undefined), 25_000);
    expect(refreshes[1]! - refreshes[0]!).toBeLessThan(20_000);
    expect((await c.rest.me()).id).toBe(first.user.id);
  }, 30_000);

  it("tries a rate-limited refresh again after the Retry-After, not every 5 s", async () => {
    const limited = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () =>
        Response.json(
          { error: { code: "rate_limited", message: "slow down", retry_after: 40 } },
          { status: 429, headers: { "Retry-After": "40" } },
        ),
    });
    try {
      const c = new ParleyClient({ baseUrl: `http://127.0.0.1:${limited.port}` });
      s.clients.push(c);
      const real = await s.client();
      c.adopt({
        user: real.session!.user,
        session_id: real.session!.sessionId,
        access_token: real.session!.accessToken,
        refresh_token: real.session!.refreshToken,
        expires_in: 60,
        token_type: "bearer",
      });
      // When the next refresh is due (the timer itself is not what is tested here).
      const delays: number[] = [];
      const inner = (c as unknown as { tokens: { scheduleRefresh: (ms: number) => void } }).tokens;
      const schedule = inner.scheduleRefresh.bind(inner);
      inner.scheduleRefresh = (ms) => {
        delays.push(ms);
        schedule(ms);
      };
      expect((await rejection(c.refresh())).code).toBe("rate_limited");
      await waitFor(() => (delays.length > 0 ? true : undefined));
      expect(delays[0]).toBeGreaterThanOrEqual(40_000);
      c.close();
    } finally {
      limited.stop(true);
    }
  });

  it("gives up on a call with no answer after timeoutMs (timeout), and a hung refresh does not hold the others", async () => {
    // A server that takes requests and never answers, as a link that swallows packets would look.
    const silent = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => new Promise<Response>(() => {}),
    });
    try {
      const baseUrl = `http://127.0.0.1:${silent.port}`;
      const started = Date.now();
      expect(await rejection(new RestClient({ baseUrl, timeoutMs: 100 }).me())).toMatchObject({
        code: "timeout",
      });
      expect(Date.now() - started).toBeLessThan(1000);
      // A fetch of the app's that does not heed the abort is given up on all the same.
      const deaf = new RestClient({ baseUrl, timeoutMs: 50, fetch: () => new Promise(() => {}) });
      expect((await rejection(deaf.me())).code).toBe("timeout");

      const c = new ParleyClient({ baseUrl, restTimeoutMs: 100 });
      s.clients.push(c);
      const real = await s.client();
      c.adopt({
        user: real.session!.user,
        session_id: real.session!.sessionId,
        access_token: real.session!.accessToken,
        refresh_token: real.session!.refreshToken,
        expires_in: 60,
        token_type: "bearer",
      });
      expect((await rejection(c.refresh())).code).toBe("timeout");
      expect((await rejection(c.refresh())).code).toBe("timeout");
      expect(() => new RestClient({ baseUrl, timeoutMs: 0 })).toThrow("timeoutMs");
    } finally {
      silent.stop(true);
    }
  });

  it("refreshes the access token at the configured share of its lifetime", async () => {
    const c = new ParleyClient({ baseUrl: s.baseUrl, refreshAt: 0.005 });
    s.clients.push(c);
    const first = await c.signup(newAccount());
    expect(first.expiresAt - Date.now()).toBeGreaterThan(50_000);
    // The server's clock is a ManualClock, so the new access token may equal the old one: the
    // refresh token, spent on every refresh, shows that it happened.
    await waitFor(() => (c.session?.refreshToken !== first.refreshToken ? true : undefined));
    expect((await c.rest.me()).id).toBe(first.user.id);
  });
});
