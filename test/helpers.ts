// Test harness: a real app over a real SQLite file in a temp dir, a ManualClock, silent logs that can be
// captured, and small request helpers. Every harness is closed by its test file.

import { expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type App, createApp } from "../src/app.ts";
import { type Config, loadConfig } from "../src/config.ts";
import { closeDeps, createDeps, type Deps } from "../src/deps.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { AppError } from "../src/lib/errors.ts";
import { createLogger } from "../src/lib/logger.ts";
import type { Store } from "../src/store/types.ts";
import { member } from "./store/conversations-contract.ts";

export const TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789";

export interface Harness {
  app: App;
  deps: Deps;
  clock: ManualClock;
  config: Config;
  dataDir: string;
  /** Every log line written so far, as raw JSON text. */
  logs: string[];
  close(): Promise<void>;
}

/** `store`: the store to run over instead of the one in DATA_DIR (the harness closes it). */
export async function harness(
  env: Record<string, string> = {},
  parts: { store?: Store } = {},
): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), "parley-test-"));
  const { config } = loadConfig({
    NODE_ENV: "test",
    DATA_DIR: dataDir,
    SECRET_KEY: TEST_SECRET,
    ENCRYPTION_KEY: TEST_SECRET,
    LOG_LEVEL: "info",
    // Generous defaults so that only the tests about limits meet them.
    RATE_LIMIT_PER_MINUTE: "10000",
    AUTH_RATE_LIMIT_PER_MINUTE: "10000",
    MAGIC_LINK_PER_HOUR: "1000",
    // OWASP's smallest argon2id cost (~25 ms a hash here, against ~120 ms at the default): tests sign up
    // thousands of users, and the cost itself is tested with its own values.
    PASSWORD_HASH_MEMORY_KIB: "9216",
    PASSWORD_HASH_TIME: "4",
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createLogger(config.LOG_LEVEL, sink);
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const deps = await createDeps(config, logger, { clock, ...parts });
  const app = createApp(deps);
  return {
    app,
    deps,
    clock,
    config,
    dataDir,
    logs,
    async close() {
      await closeDeps(deps);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface CallOptions {
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  /** Raw body text, sent as is (for malformed JSON tests). */
  raw?: string;
}

export interface CallResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** One request through app.handle; JSON in, JSON (or nothing) out. */
export async function call<T = any>(
  app: App,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<CallResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers["content-type"] ??= "application/json";
  const res = await app.handle(new Request(`http://localhost${path}`, { method, headers, body }));
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, body: parsed as T, headers: res.headers };
}

let counter = 0;
/** A fresh, valid sign-up body. */
export function newAccount(overrides: Record<string, string> = {}) {
  counter++;
  const tag = `${Date.now().toString(36)}${counter}`;
  return {
    email: `user${tag}@example.com`,
    username: `user_${tag}`,
    password: "correct horse battery staple",
    display_name: `User ${tag}`,
    ...overrides,
  };
}

export async function signup(app: App, overrides: Record<string, string> = {}) {
  const account = newAccount(overrides);
  const res = await call(app, "POST", "/api/auth/signup", { body: account });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { ...account, ...res.body, token: res.body.access_token as string, id: res.body.user.id as string };
}

/**
 * Asks for a magic link for `email` (202 whether or not it has an account) and answers the token of the
 * last link mailed to it through the outbox file (DATA_DIR/outbox.jsonl); throws when none was mailed.
 */
export async function mailedLinkToken(h: Harness, email: string): Promise<string> {
  expect((await call(h.app, "POST", "/api/auth/magic-link", { body: { email } })).status).toBe(202);
  await h.deps.auth.settled();
  const file = Bun.file(join(h.dataDir, "outbox.jsonl"));
  const mails = (await file.exists()) ? (await file.text()).split("\n").filter(Boolean) : [];
  // The last sign-in link: the address may have been mailed a verification link too (at sign-up).
  const mail = mails
    .map((l) => JSON.parse(l) as { to: string; text: string })
    .findLast((m) => m.to === email && m.text.includes("/auth/magic-link?token="));
  const token = /\/auth\/magic-link\?token=([A-Za-z0-9_-]+)/.exec(mail?.text ?? "")?.[1];
  if (!token) throw new Error(`no magic link mailed to ${email}`);
  return token;
}

/** A group conversation `owner` creates with `members`; answers its id. */
export async function group(app: App, owner: { token: string }, members: { id: string }[]): Promise<string> {
  const res = await call(app, "POST", "/api/conversations", {
    token: owner.token,
    body: { conversation_type: "group", participant_ids: members.map((m) => m.id) },
  });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

/** A reader bigChannel put in through the store: ids after every real user's (newId's start with a digit). */
export const storeReader = (i: number) => `r-${String(i).padStart(5, "0")}`;

/**
 * A channel of thousands: made over HTTP by `owner` with `members` (the first `admins` of them promoted to
 * admin), then `readers` more put in straight through the store (storeReader(0), storeReader(1)...: each
 * a member from the log's start, joined now), which makes thousands in a second where signing each up and
 * adding them over HTTP would take minutes. Answers its id.
 */
export async function bigChannel(
  h: Harness,
  owner: { token: string },
  members: { id: string }[],
  options: { admins?: number; readers: number; name?: string },
): Promise<string> {
  const res = await call(h.app, "POST", "/api/conversations", {
    token: owner.token,
    body: { conversation_type: "channel", name: options.name, participant_ids: members.map((m) => m.id) },
  });
  expect(res.status).toBe(201);
  const channel = res.body.id as string;
  for (const admin of members.slice(0, options.admins ?? 0)) {
    const promoted = await call(h.app, "PUT", `/api/conversations/${channel}/participants/${admin.id}`, {
      token: owner.token,
      body: { role: "admin" },
    });
    expect(promoted.status).toBe(200);
  }
  for (let i = 0; i < options.readers; i++)
    await h.deps.store.conversations.addParticipant(
      member(channel, storeReader(i), { joined_at: h.clock.now() }),
    );
  return channel;
}

/** What a route that pages through members (limit, cursor) refuses with 422, and the field it names. */
export const BAD_MEMBER_PAGE_QUERIES: [query: string, field: string][] = [
  ["limit=0", "limit"],
  ["limit=201", "limit"],
  ["limit=ten", "limit"],
  ["limit=1.5", "limit"],
  ["cursor=!!!", "cursor"],
  [`cursor=${Buffer.from("user:").toString("base64url")}`, "cursor"],
  [`cursor=${Buffer.from("id:abc").toString("base64url")}`, "cursor"],
  [`cursor=${Buffer.from("user:a b").toString("base64url")}`, "cursor"],
  [`cursor=${Buffer.from(`user:${"x".repeat(65)}`).toString("base64url")}`, "cursor"],
  [`cursor=${Buffer.from("user:abc").toString("base64url")}*`, "cursor"],
];

/** Polls `check` until it returns a value, or fails after `ms`. */
export async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("waitFor: timed out");
    await Bun.sleep(10);
  }
}

/**
 * Resolves to the error a promise rejects with, an AppError unless another class is named; fails the test
 * if it resolves or rejects with something else.
 */
export async function rejection<E extends Error = AppError>(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => E = AppError as unknown as abstract new (
    ...args: never[]
  ) => E,
): Promise<E> {
  const outcome = await p.then(
    () => "resolved",
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(type);
  return outcome as E;
}
