// Fuzzes every REST operation the OpenAPI document lists: hostile path and query values, each body field
// replaced by hostile values, hostile whole bodies, other content types and credentials, then seeded random
// mixes of those. Every answer must be a success or one of the stable 4xx codes in the error shape; never a
// 5xx, and no "unhandled error" in the log. FUZZ_SEED=<n> replays another sequence, FUZZ_REST=<n> sets the
// random requests per operation.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ERRORS } from "../../src/lib/errors.ts";
import { NUMBERS, Rng, randomString, STRINGS } from "../fuzz.ts";
import { call, group, type Harness, harness, signup } from "../helpers.ts";

const SEED = Number.parseInt(process.env.FUZZ_SEED ?? "20261129", 10);
const RANDOM_PER_OPERATION = Number.parseInt(process.env.FUZZ_REST ?? "150", 10);
const CONCURRENCY = 8;
const STABLE_4XX = new Set([400, 401, 403, 404, 409, 413, 415, 422, 429]);

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  anyOf?: Schema[];
  format?: string;
  minimum?: number;
}

interface Operation {
  method: string;
  path: string;
  params: { name: string; in: "path" | "query" }[];
  body?: Schema;
}

/** The fixtures one operation's requests run against: two users in a group with one message. */
interface World {
  owner: Awaited<ReturnType<typeof signup>>;
  other: Awaited<ReturnType<typeof signup>>;
  /** A second session of the owner's, for DELETE /api/auth/sessions/{id}. */
  spareSession: string;
  conversation: string;
  message: string;
}

/** Path and query values that are not what the route expects. */
const HOSTILE_PARAMS = [
  "",
  "0",
  "-1",
  "1.5",
  "1e309",
  "NaN",
  "99999999999999999999999",
  "null",
  "undefined",
  "[object Object]",
  "%00",
  "%FF%FE",
  "%F0%9F%98%80",
  "%E2%80%AE",
  "..%2F..%2Fetc%2Fpasswd",
  "a%20b",
  "' OR 1=1 --",
  "__proto__",
  "constructor",
  "x".repeat(5000),
  "%".repeat(3),
];

/** Values a body field is replaced with, whatever its type. */
const HOSTILE_VALUES: unknown[] = [
  ...NUMBERS.filter((n) => Number.isFinite(n)),
  ...STRINGS,
  null,
  true,
  false,
  [],
  {},
  [null],
  { $gt: "" },
  { __proto__: { admin: true } },
  "a".repeat(200_000),
  nested(200),
];

/** Whole bodies, sent as raw text. */
const HOSTILE_BODIES = [
  "",
  "null",
  "true",
  "1",
  '"text"',
  "[]",
  "[{}]",
  "{",
  '{"a":}',
  "{'a': 1}",
  '{"a": 1,}',
  "\u0000",
  "NaN",
  "1e999",
  "[".repeat(100_000),
  `${"[".repeat(5000)}${"]".repeat(5000)}`,
  '{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}',
  `{"a": "${"\\ud800".repeat(10)}"}`,
];

/** Every UTF-8 byte of `s` percent-encoded (lone surrogates become U+FFFD, as on the wire). */
const percentEncoded = (s: string) =>
  Array.from(Buffer.from(s), (b) => `%${b.toString(16).padStart(2, "0")}`).join("");

function nested(depth: number): unknown {
  let v: unknown = "bottom";
  for (let i = 0; i < depth; i++) v = { v };
  return v;
}

function operations(doc: { paths: Record<string, Record<string, Record<string, unknown>>> }): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (path.startsWith("/docs")) continue;
    for (const [method, op] of Object.entries(methods)) {
      if (method === "ws") continue;
      const body = op.requestBody as { content: Record<string, { schema: Schema }> } | undefined;
      ops.push({
        method: method.toUpperCase(),
        path,
        params: ((op.parameters as Operation["params"] | undefined) ?? []).filter(
          (p) => p.in === "path" || p.in === "query",
        ),
        body: body?.content["application/json"]?.schema,
      });
    }
  }
  return ops;
}

/** A path parameter's real value in this world, from the route it belongs to. */
function pathValue(world: World, path: string, name: string): string {
  if (name === "user_id") return world.other.id;
  if (name === "emoji") return encodeURIComponent("👍");
  if (path.startsWith("/api/auth/sessions")) return world.spareSession;
  if (path.startsWith("/api/users")) return world.owner.id;
  if (path.startsWith("/api/messages")) return world.message;
  return world.conversation;
}

const QUERY_VALUES: Record<string, string> = { limit: "5", q: "hello", before: "100", after: "0" };

/** A body the route would accept in this world (as far as the schema and a few known names say). */
function validValue(world: World, name: string, schema: Schema): unknown {
  const known: Record<string, unknown> = {
    email: `fuzz${Math.random().toString(36).slice(2)}@example.com`,
    username: `fuzz_${Math.random().toString(36).slice(2, 12)}`,
    password: "correct horse battery staple",
    current_password: "correct horse battery staple",
    new_password: "another horse battery staple",
    participant_ids: [world.other.id],
    user_id: world.other.id,
    refresh_token: world.owner.refresh_token,
    emoji: "👍",
    channel: "fuzz",
    client_msg_id: `c${Math.random().toString(36).slice(2)}`,
    reply_to: world.message,
    seq: 1,
  };
  if (name in known) return known[name];
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : (schema.type ?? schema.anyOf?.[1]?.type);
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [key, sub] of Object.entries(schema.properties ?? {}))
        out[key] = validValue(world, key, sub);
      return out;
    }
    case "array":
      return schema.items ? [validValue(world, name, schema.items)] : [];
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return false;
    default:
      return `fuzz ${name}`;
  }
}

interface Request {
  method: string;
  path: string;
  headers?: Record<string, string>;
  token?: string;
  body?: unknown;
  raw?: string | Uint8Array | FormData;
}

function url(op: Operation, world: World, override: Record<string, string> = {}): string {
  let path = op.path;
  const query: string[] = [];
  for (const p of op.params) {
    const value =
      override[p.name] ?? (p.in === "path" ? pathValue(world, op.path, p.name) : QUERY_VALUES[p.name]);
    if (value === undefined) continue;
    if (p.in === "path") path = path.replace(`{${p.name}}`, value);
    else query.push(`${p.name}=${value}`);
  }
  return query.length ? `${path}?${query.join("&")}` : path;
}

/** Every case of one operation that is listed rather than drawn: each hostile value in each place. */
function listedCases(op: Operation, world: World): Request[] {
  const token = world.owner.token;
  const body = op.body ? (validValue(world, "body", op.body) as Record<string, unknown>) : undefined;
  const cases: Request[] = [{ method: op.method, path: url(op, world), token, body }];
  for (const p of op.params) {
    for (const value of HOSTILE_PARAMS) {
      cases.push({ method: op.method, path: url(op, world, { [p.name]: value }), token, body });
    }
    if (p.in === "query") {
      // The same parameter twice: an array where a string is expected.
      const path = `${url(op, world)}${op.path.includes("?") ? "&" : "?"}${p.name}=1&${p.name}=2`;
      cases.push({ method: op.method, path, token, body });
    }
  }
  if (body) {
    for (const field of [...Object.keys(body), "__proto__", "constructor", "unknown_field"]) {
      for (const value of HOSTILE_VALUES) {
        cases.push({ method: op.method, path: url(op, world), token, body: { ...body, [field]: value } });
      }
      const without = { ...body };
      delete without[field];
      cases.push({ method: op.method, path: url(op, world), token, body: without });
    }
    for (const raw of HOSTILE_BODIES) cases.push({ method: op.method, path: url(op, world), token, raw });
    cases.push({
      method: op.method,
      path: url(op, world),
      token,
      raw: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    });
    const form = new FormData();
    for (const [key, value] of Object.entries(body)) form.set(key, JSON.stringify(value));
    cases.push({ method: op.method, path: url(op, world), token, raw: form });
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "application/json; charset=utf-16",
      "application/jsonp",
      "application/xml",
    ]) {
      cases.push({
        method: op.method,
        path: url(op, world),
        token,
        headers: { "content-type": type },
        raw: JSON.stringify(body),
      });
    }
  }
  for (const authorization of [
    "",
    "Bearer",
    "Bearer x",
    "Basic Zm9vOmJhcg==",
    `Bearer ${token}x`,
    "Bearer ...",
  ]) {
    cases.push({ method: op.method, path: url(op, world), headers: { authorization }, body });
  }
  // Someone else's credentials: the other user (no owner of anything here) and an access token in the query.
  cases.push({ method: op.method, path: url(op, world), token: world.other.token, body });
  cases.push({
    method: op.method,
    path: `${url(op, world)}${url(op, world).includes("?") ? "&" : "?"}access_token=x`,
    body,
  });
  return cases;
}

/** A random mix: several places hostile at once. */
function drawnCase(rng: Rng, op: Operation, world: World): Request {
  const override: Record<string, string> = {};
  for (const p of op.params) {
    if (rng.chance(0.3))
      override[p.name] = rng.chance(0.5) ? rng.pick(HOSTILE_PARAMS) : percentEncoded(randomString(rng));
  }
  const request: Request = {
    method: op.method,
    path: url(op, world, override),
    token: rng.chance(0.9) ? world.owner.token : rng.pick([world.other.token, undefined]),
  };
  if (op.body) {
    const body = validValue(world, "body", op.body) as Record<string, unknown>;
    for (const key of Object.keys(body)) {
      if (rng.chance(0.3)) body[key] = rng.chance(0.5) ? rng.pick(HOSTILE_VALUES) : randomString(rng);
      else if (rng.chance(0.1)) delete body[key];
    }
    if (rng.chance(0.1)) body[randomString(rng)] = rng.pick(HOSTILE_VALUES);
    request.body = rng.chance(0.05) ? undefined : body;
    if (rng.chance(0.05)) request.raw = rng.pick(HOSTILE_BODIES);
  }
  return request;
}

async function send(h: Harness, r: Request) {
  if (r.raw === undefined) {
    return call(h.app, r.method, r.path, { token: r.token, body: r.body, headers: r.headers });
  }
  const headers: Record<string, string> = { ...r.headers };
  if (r.token) headers.authorization = `Bearer ${r.token}`;
  if (!(r.raw instanceof FormData)) headers["content-type"] ??= "application/json";
  const res = await h.app.handle(
    new Request(`http://localhost${r.path}`, { method: r.method, headers, body: r.raw as BodyInit }),
  );
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, body: body as { error?: { code?: string } } };
}

/** What is wrong with an answer, or null when it is a success or a stable error in the error shape. */
function problem(status: number, body: { error?: { code?: string } } | null): string | null {
  if (status < 400) return status >= 200 ? null : `status ${status}`;
  if (!STABLE_4XX.has(status)) return `status ${status}`;
  const code = body?.error?.code;
  if (typeof code !== "string" || !(code in ERRORS)) return `status ${status} without a known code`;
  if (ERRORS[code as keyof typeof ERRORS] !== status) return `code ${code} with status ${status}`;
  return null;
}

describe("REST fuzz: every operation in the OpenAPI document", async () => {
  let h: Harness;
  let ops: Operation[] = [];

  beforeAll(async () => {
    h = await harness({
      RATE_LIMIT_PER_MINUTE: "10000000",
      AUTH_RATE_LIMIT_PER_MINUTE: "10000000",
      MAGIC_LINK_PER_HOUR: "10000000",
    });
    ops = operations((await call(h.app, "GET", "/docs/json")).body);
  });
  afterAll(() => h.close());

  /** Fresh fixtures for each operation: one operation's requests may delete or revoke what they use. */
  async function world(): Promise<World> {
    const owner = await signup(h.app);
    const other = await signup(h.app);
    await h.deps.store.users.update(owner.id, { role: "admin", updated_at: h.clock.now() });
    const spare = await call(h.app, "POST", "/api/auth/signin", {
      body: { username: owner.username, password: owner.password },
    });
    const conversation = await group(h.app, owner, [other]);
    const sent = await call(h.app, "POST", `/api/conversations/${conversation}/messages`, {
      token: owner.token,
      body: { content: "hello fuzz" },
    });
    expect(sent.status).toBe(201);
    return { owner, other, spareSession: spare.body.session_id, conversation, message: sent.body.id };
  }

  /** Whether an operation's requests left the fixtures usable (a sign-out, a deletion or a password change does not). */
  async function intact(w: World): Promise<boolean> {
    const [me, conversation, message] = await Promise.all([
      call(h.app, "GET", "/api/auth/me", { token: w.owner.token }),
      call(h.app, "GET", `/api/conversations/${w.conversation}`, { token: w.other.token }),
      call(h.app, "GET", `/api/messages/${w.message}/receipts`, { token: w.owner.token }),
    ]);
    const sessions = await call(h.app, "GET", "/api/auth/sessions", { token: w.owner.token });
    return (
      me.status === 200 &&
      conversation.status === 200 &&
      message.status === 200 &&
      sessions.status === 200 &&
      sessions.body.items.some((s: { id: string }) => s.id === w.spareSession)
    );
  }

  it("lists the operations to fuzz, request bodies with their JSON schema", () => {
    expect(ops.length).toBeGreaterThanOrEqual(30);
    const withBody = ops.filter((op) => op.body).map((op) => `${op.method} ${op.path}`);
    expect(withBody).toContain("POST /api/conversations/{id}/messages");
    expect(withBody.length).toBeGreaterThanOrEqual(15);
  });

  it("answers every hostile request with a success or a stable 4xx in the error shape", async () => {
    const rng = new Rng(SEED);
    const found: string[] = [];
    let sent = 0;
    let w = await world();
    for (const op of ops) {
      if (!(await intact(w))) w = await world();
      const cases = listedCases(op, w);
      for (let i = 0; i < RANDOM_PER_OPERATION; i++) cases.push(drawnCase(rng, op, w));
      // A few at a time: password hashing runs on Bun's thread pool while the next request is checked.
      for (let i = 0; i < cases.length; i += CONCURRENCY) {
        const batch = cases.slice(i, i + CONCURRENCY);
        const answers = await Promise.all(batch.map((r) => send(h, r)));
        answers.forEach((res, j) => {
          const r = batch[j] as Request;
          sent++;
          const wrong = problem(res.status, res.body);
          if (!wrong || found.length >= 20) return;
          const what =
            r.raw instanceof Uint8Array || r.raw instanceof FormData ? String(r.raw) : (r.raw ?? r.body);
          found.push(
            `${op.method} ${op.path}: ${wrong} for ${r.path.slice(0, 200)} ${JSON.stringify(what)?.slice(0, 200)}` +
              ` -> ${JSON.stringify(res.body).slice(0, 200)}`,
          );
        });
      }
    }
    expect(found).toEqual([]);
    expect(sent).toBeGreaterThan(ops.length * RANDOM_PER_OPERATION);
    expect(h.logs.filter((line) => line.includes("unhandled error"))).toEqual([]);
  }, 120_000);

  it("still serves valid requests after the fuzzing", async () => {
    const w = await world();
    const sent = await call(h.app, "POST", `/api/conversations/${w.conversation}/messages`, {
      token: w.other.token,
      body: { content: "still here", client_msg_id: "after-fuzz" },
    });
    expect(sent.status).toBe(201);
    const page = await call(h.app, "GET", `/api/conversations/${w.conversation}/messages`, {
      token: w.owner.token,
    });
    expect(page.status).toBe(200);
    expect(page.body.items.map((m: { content: string }) => m.content)).toContain("still here");
  });
});
