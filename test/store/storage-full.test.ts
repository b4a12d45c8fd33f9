// A store that cannot write (the disk full) while it can still read: writes answer 503 unavailable with
// Retry-After instead of 500, reads keep answering (history included, though fetching marks delivery,
// a write), /ready says the store is failing, and nothing that was acked is lost.

import { Database } from "bun:sqlite";
import { afterAll, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { call, harness, signup } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "parley-full-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("answers writes 503 on a full disk, keeps reads, fails /ready, and loses no acked message", async () => {
  const file = join(dir, "parley.db");
  const roomy = await harness({}, { store: openSqliteStore(file) });
  const [alice, bob] = [await signup(roomy.app), await signup(roomy.app)];
  const conv = await call(roomy.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  await roomy.close();

  // Reopened at the size it has: the first write that needs one more page meets a full disk.
  const raw = new Database(file);
  const pages = Number(raw.query("PRAGMA page_count").values()[0]?.[0]);
  raw.close();
  const full = await harness({}, { store: openSqliteStore(file, { maxPageCount: pages }) });
  const acked: string[] = [];
  let refused: { status: number; body: any; headers: Headers } | undefined;
  for (let i = 0; i < 500 && !refused; i++) {
    const res = await call(full.app, "POST", `/api/conversations/${conv.body.id}/messages`, {
      token: alice.token,
      body: { content: `message ${i} ${"x".repeat(500)}` },
    });
    if (res.status === 201) acked.push(res.body.id);
    else refused = res;
  }
  expect(refused?.status).toBe(503);
  expect(refused?.body.error.code).toBe("unavailable");
  expect(Number(refused?.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(full.logs.some((l) => l.includes('"storage unavailable"') && l.includes("SQLITE_FULL"))).toBe(true);
  expect(full.logs.some((l) => l.includes("unhandled error"))).toBe(false);

  const history = await call(full.app, "GET", `/api/conversations/${conv.body.id}/messages?limit=200`, {
    token: bob.token,
  });
  expect(history.status).toBe(200);
  const ready = await full.app.handle(new Request("http://localhost/ready"));
  expect(ready.status).toBe(503);
  await full.close();

  const after = await harness({}, { store: openSqliteStore(file) });
  const page = await call(after.app, "GET", `/api/conversations/${conv.body.id}/messages?limit=200`, {
    token: alice.token,
  });
  expect(page.body.items.map((m: { id: string }) => m.id)).toEqual(acked);
  expect((await after.app.handle(new Request("http://localhost/ready"))).status).toBe(200);
  await after.close();
});

it("answers a history read even when the delivery mark it makes cannot be written", async () => {
  const h = await harness();
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  const conv = await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  const path = `/api/conversations/${conv.body.id}/messages`;
  await call(h.app, "POST", path, { token: alice.token, body: { content: "hello" } });
  // The write fails as bun:sqlite reports a full disk.
  h.deps.store.conversations.markDelivered = async () => {
    throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
  };
  for (const read of [path, `/api/conversations/${conv.body.id}/events?after=0`]) {
    const res = await call(h.app, "GET", read, { token: bob.token });
    expect({ read, status: res.status }).toEqual({ read, status: 200 });
    expect(res.body.items.some((m: { content: string }) => m.content === "hello")).toBe(true);
  }
  await h.close();
});
