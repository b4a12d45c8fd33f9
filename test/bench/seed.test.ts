// The bench's accounts, written straight into a running Parley's database, work as a signup's would:
// REST with the access token, a socket, refresh, and sign-in with the shared password.

import { afterAll, beforeAll, expect, it } from "bun:test";
import type { ParleyServer } from "../../bench/lib/parley-server.ts";
import { startParleyServer } from "../../bench/lib/parley-server.ts";
import { BENCH_PASSWORD, seedAccounts } from "../../bench/lib/seed.ts";
import type { TokenResponse } from "../../src/modules/auth/model.ts";
import { connect } from "../realtime/ws-client.ts";

let server: ParleyServer;
let accounts: TokenResponse[];

beforeAll(async () => {
  server = await startParleyServer({ env: { LOG_LEVEL: "warn" } });
  accounts = await seedAccounts(server.env, 3, "t1");
}, 30_000);
afterAll(() => server?.stop());

const json = async (path: string, init: RequestInit = {}, token?: string) => {
  const res = await fetch(`${server.url}${path}`, {
    ...init,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
  });
  return { status: res.status, body: await res.json() };
};

it("makes distinct users, each with a session and tokens", () => {
  expect(accounts).toHaveLength(3);
  expect(new Set(accounts.map((a) => a.user.id)).size).toBe(3);
  expect(new Set(accounts.map((a) => a.session_id)).size).toBe(3);
  expect(accounts.map((a) => a.user.username)).toEqual(["bench_t1_0", "bench_t1_1", "bench_t1_2"]);
});

it("gives access tokens the server accepts for REST", async () => {
  const [a] = accounts as [TokenResponse];
  const me = await json("/api/auth/me", {}, a.access_token);
  expect(me.status).toBe(200);
  expect(me.body.id).toBe(a.user.id);
});

it("gives sockets that authenticate and are greeted", async () => {
  const [, b] = accounts as [TokenResponse, TokenResponse];
  const socket = await connect(`${server.wsUrl}/ws/${b.user.id}/${b.session_id}`, [
    "parley.msgpack",
    `bearer.${b.access_token}`,
  ]);
  try {
    const hello = await socket.next((f) => f.type === "hello");
    expect(hello).toMatchObject({ user_id: b.user.id, session_id: b.session_id });
  } finally {
    socket.close();
  }
});

it("gives refresh tokens that rotate and a password that signs in", async () => {
  const c = accounts[2] as TokenResponse;
  const refreshed = await json("/api/auth/refresh", {
    method: "POST",
    body: JSON.stringify({ refresh_token: c.refresh_token }),
  });
  expect(refreshed.status).toBe(200);
  expect(refreshed.body.session_id).toBe(c.session_id);
  const signin = await json("/api/auth/signin", {
    method: "POST",
    body: JSON.stringify({ username: c.user.username, password: BENCH_PASSWORD }),
  });
  expect(signin.status).toBe(200);
  expect(signin.body.user.id).toBe(c.user.id);
});

it("refuses a server on MongoDB, whose store it cannot write", async () => {
  await expect(
    seedAccounts({ ...server.env, MONGODB_URL: "mongodb://127.0.0.1:1/x" }, 1, "t2"),
  ).rejects.toThrow(/SQLite/);
});
