// A session that ends while the SDK is connected or away: the SDK stops reconnecting, fails what waits
// with the reason's code, and says so in a final close event, whether the server closed the socket
// (4501), refused the upgrade (which looks like any failed connection) or refused the token's refresh.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ParleyClient, type Session } from "../../src/client/index.ts";
import { CLOSE } from "../../src/realtime/frames.ts";
import { newAccount, waitFor } from "../helpers.ts";
import {
  fakeConnection,
  fakeServer,
  holdReconnects,
  record,
  rejection,
  type Server,
  startServer,
} from "./helpers.ts";

let s: Server;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

const idOf = (c: ParleyClient) => c.session!.user.id;

function dropSockets(c: ParleyClient) {
  for (const ws of [...s.h.deps.gateway.connections.ofUser(idOf(c))]) ws.close(CLOSE.restart, "test");
}

async function connectedPair() {
  const [a, b] = [await s.client(), await s.client({ backoff: { minMs: 10, maxMs: 20 } })];
  const conv = await a.rest.conversations.create({ conversation_type: "dm", participant_ids: [idOf(b)] });
  await b.connect();
  return { a, b, conv: conv.id };
}

describe("the session check", () => {
  it("does not hold the reconnects while it waits for its answer", async () => {
    let refusals = 0;
    const fake = fakeServer({ refuse: () => refusals-- > 0 });
    const rt = fakeConnection(fake.baseUrl, {
      backoff: { minMs: 5, maxMs: 20 },
      // A check that never answers, as over a link that swallows packets.
      checkSession: () => new Promise<void>(() => {}),
    });
    try {
      const opens = record(rt, "open");
      await rt.connect();
      refusals = 3;
      for (const ws of fake.sockets) ws.close(CLOSE.restart, "restart");
      await opens.next((o) => o.reconnected, 2000);
      expect(fake.upgrades).toBe(5);
    } finally {
      rt.close();
      fake.stop();
    }
  });
});

describe("a session that ends", () => {
  it("while away: the refused reconnect ends the connection with session_revoked, and waiting sends fail with it", async () => {
    const { b, conv } = await connectedPair();
    const closes = record(b, "close");
    const held = holdReconnects(b);
    dropSockets(b);
    expect(await closes.next()).toMatchObject({ code: CLOSE.restart, reconnecting: true });
    const waiting = b.realtime.send(conv, { content: "typed while away" });
    // Revoked while no socket is open: the server has no socket to close, it refuses the next upgrade.
    await b.rest.signout();
    held.open();
    const final = await closes.next((c) => !c.reconnecting);
    expect(final).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    expect(final.error?.code).toBe("session_revoked");
    expect((await rejection(waiting)).code).toBe("session_revoked");
    expect((await rejection(b.realtime.send(conv, { content: "later" }))).code).toBe("session_revoked");
    const lookups = held.lookups;
    // No reconnect is scheduled any more (before, one came every 10-20 ms).
    await Bun.sleep(100);
    expect(held.lookups).toBe(lookups);
    expect(closes.items.filter((c) => !c.reconnecting)).toHaveLength(1);
  });

  it("while away, when the token's refresh is refused: the connection ends with the refusal's code", async () => {
    const { b } = await connectedPair();
    const closes = record(b, "close");
    const held = holdReconnects(b);
    dropSockets(b);
    await closes.next();
    await b.rest.signout();
    // The access token ran out meanwhile: the reconnect refreshes it first, and the refresh is refused.
    b.session!.expiresAt = Date.now() - 1000;
    held.open();
    const final = await closes.next((c) => !c.reconnecting);
    expect(final.error?.code).toBe("session_revoked");
    expect(final.code).toBe(CLOSE.sessionRevoked);
  });

  it("while connected (4501): waiting requests fail with session_revoked, and the close says it", async () => {
    const { b } = await connectedPair();
    const closes = record(b, "close");
    await b.rest.signout();
    const final = await closes.next();
    expect(final).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    expect(final.error?.code).toBe("session_revoked");
    expect((await rejection(b.realtime.presence("away"))).code).toBe("session_revoked");
  });

  it("ended for good, it is replaced by the next connect() once signed in again", async () => {
    const account = newAccount();
    const b = new ParleyClient({ baseUrl: s.baseUrl, backoff: { minMs: 10, maxMs: 20 } });
    s.clients.push(b);
    await b.signup(account);
    await b.connect({ positions: {} });
    const closes = record(b, "close");
    await b.rest.signout();
    expect(await closes.next()).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    await b.signin({ email: account.email, password: account.password });
    await b.connect({ positions: {} });
    expect(b.realtime.connected).toBe(true);
  });

  it("before connecting: connect() fails with session_revoked, not closed", async () => {
    const b = await s.client();
    await b.rest.signout();
    expect((await rejection(b.connect({ positions: {} }))).code).toBe("session_revoked");
  });
});

describe("a refresh refused while connected", () => {
  it("ends the open connection as a revocation does: one final close carrying the refusal, no reconnect", async () => {
    const { b, conv } = await connectedPair();
    const closes = record(b, "close");
    // The server no longer knows the refresh token (expired and pruned, say) while the socket, upgraded with
    // a good access token, stays open: only the refusal says the session is over.
    b.session!.refreshToken = "no-longer-known";
    const refused = await rejection(b.refresh());
    expect(refused).toMatchObject({ status: 401, code: "unauthorized" });
    const final = await closes.next((c) => !c.reconnecting);
    expect(final).toMatchObject({ code: CLOSE.unauthorized, reconnecting: false });
    expect(final.error?.code).toBe("unauthorized");
    expect(b.realtime.connected).toBe(false);
    expect((await rejection(b.realtime.send(conv, { content: "after" }))).code).toBe("unauthorized");
    // The server sees the socket go, and the app heard of the end once.
    await waitFor(() => (s.h.deps.gateway.connections.ofUser(idOf(b)).size === 0 ? true : undefined));
    expect((await rejection(b.refresh())).code).toBe("unauthorized");
    expect(closes.items).toHaveLength(1);
  });
});

describe("a call answered session_revoked, before any refresh", () => {
  it("ends the session as a refused refresh does: one final close, no reconnect, calls fail at once, store emptied", async () => {
    const account = newAccount();
    let stored: Session | null = null;
    const store = {
      load: async () => stored,
      save: async (session: Session | null) => {
        stored = session;
      },
    };
    const paths: string[] = [];
    const b = new ParleyClient({
      baseUrl: s.baseUrl,
      backoff: { minMs: 10, maxMs: 20 },
      store,
      fetch: (url, init) => {
        paths.push(url.pathname);
        return fetch(url, init);
      },
    });
    const other = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(b, other);
    await b.signup(account);
    await other.signin({ username: account.username, password: account.password });
    const peer = await s.client();
    const conv = await b.rest.conversations.create({
      conversation_type: "dm",
      participant_ids: [idOf(peer)],
    });
    await b.connect({ positions: {} });
    const closes = record(b, "close");
    // Away when the session ends, so that no close from the server tells it: only the REST answer does.
    const held = holdReconnects(b);
    dropSockets(b);
    expect(await closes.next()).toMatchObject({ code: CLOSE.restart, reconnecting: true });
    const waiting = b.realtime.send(conv.id, { content: "typed while away" });
    // Another device ends this one's session; its access token still looks good (far from its expiry).
    await other.rest.deleteSession(b.session!.sessionId);
    expect(b.session!.expiresAt - Date.now()).toBeGreaterThan(60_000);
    paths.length = 0;
    expect(await rejection(b.rest.me())).toMatchObject({ status: 401, code: "session_revoked" });
    expect(paths).toEqual(["/api/auth/me"]);

    const final = await closes.next((c) => !c.reconnecting);
    expect(final).toMatchObject({ code: CLOSE.sessionRevoked, reconnecting: false });
    expect(final.error?.code).toBe("session_revoked");
    expect((await rejection(waiting)).code).toBe("session_revoked");
    expect((await rejection(b.realtime.send(conv.id, { content: "later" }))).code).toBe("session_revoked");
    // The held reconnect, let go, opens nothing: the connection has ended.
    held.open();
    await Bun.sleep(100);
    expect(b.realtime.connected).toBe(false);
    expect(s.h.deps.gateway.connections.ofUser(idOf(b)).size).toBe(0);
    // As after a refused refresh: the session is not asked about again, and the store forgot it.
    await waitFor(() => (stored === null ? true : undefined));
    expect((await rejection(b.refresh())).code).toBe("session_revoked");
    expect((await rejection(b.rest.conversations.list())).code).toBe("session_revoked");
    expect(paths).toEqual(["/api/auth/me"]);
    expect(closes.items.filter((c) => !c.reconnecting)).toHaveLength(1);
  });

  it("leaves a newer session alone when the answer is about an earlier session's token", async () => {
    const account = newAccount();
    let hold: Promise<void> | undefined;
    const b = new ParleyClient({
      baseUrl: s.baseUrl,
      fetch: async (url, init) => {
        if (url.pathname === "/api/auth/me") await hold;
        return fetch(url, init);
      },
    });
    const other = new ParleyClient({ baseUrl: s.baseUrl });
    s.clients.push(b, other);
    const first = await b.signup(account);
    await other.signin({ username: account.username, password: account.password });
    let release = () => {};
    hold = new Promise<void>((r) => {
      release = r;
    });
    // A call made with the first session's token, held on its way while that session ends elsewhere and
    // this client signs in again.
    const late = b.rest.me();
    await other.rest.deleteSession(first.sessionId);
    hold = undefined;
    const second = await b.signin({ username: account.username, password: account.password });
    await b.connect({ positions: {} });
    const closes = record(b, "close");
    release();
    expect(await rejection(late)).toMatchObject({ code: "session_revoked" });
    expect(b.session?.sessionId).toBe(second.sessionId);
    expect((await b.rest.me()).id).toBe(second.user.id);
    expect(b.realtime.connected).toBe(true);
    expect(closes.items).toHaveLength(0);
  });
});
