// No secret reaches a log line, and none is kept as it was given: a real server process, logging at
// trace, run through every flow that handles a password or a token (sign-up, sign-in, refresh and its
// reuse, a magic link mailed over SMTP and used, password changes, tokens in a query, a header and a
// subprotocol, bad tokens, /metrics), then its whole output, its database and its Redis keys searched.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { SMTPServer } from "smtp-server";
import { sha256 } from "../src/lib/crypto.ts";
import { parseMessage } from "./mail/smtp-sink.ts";
import { connect, UPGRADE_HEADERS } from "./realtime/ws-client.ts";
import { type Running, start } from "./server-process.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const PREFIX = `secrets-test-${tag}:`;

/** Every secret the flow handles, by what it is, so a failure says which one leaked. */
const secrets = new Map<string, string>();
const keep = (what: string, value: string) => {
  expect(value.length).toBeGreaterThan(0);
  secrets.set(what, value);
  return value;
};

const env = {
  SECRET_KEY: keep("SECRET_KEY", `secret-key-${tag}-0123456789abcdefghij`),
  ENCRYPTION_KEY: keep("ENCRYPTION_KEY", `encryption-key-${tag}-0123456789abcdef`),
  METRICS_TOKEN: keep("METRICS_TOKEN", `metrics-token-${tag}`),
};
const smtpPassword = keep("SMTP password", `smtp-pass-${tag}`);

let dataDir: string;
let server: Running;
let smtp: SMTPServer;
const mails: string[] = [];
let output = "";

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "parley-secrets-"));
  smtp = new SMTPServer({
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    logger: false,
    onAuth: (auth, _session, done) =>
      auth.password === smtpPassword ? done(null, { user: auth.username }) : done(new Error("bad login")),
    onData(stream, _session, done) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mails.push(parseMessage(Buffer.concat(chunks).toString("utf8")).text);
        done();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", () => resolve()));
  const { port } = smtp.server.address() as AddressInfo;
  server = await start([process.execPath, "run", "src/index.ts"], {
    ...env,
    DATA_DIR: dataDir,
    LOG_LEVEL: "trace",
    REDIS_URL,
    REDIS_PREFIX: PREFIX,
    SMTP_URL: `smtp://parley-mailer:${smtpPassword}@127.0.0.1:${port}`,
    PUBLIC_URL: "https://chat.example.com",
    REFRESH_REUSE_GRACE_SECONDS: "0",
    PASSWORD_HASH_MEMORY_KIB: "9216",
    PASSWORD_HASH_TIME: "4",
  });
}, 30_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) server.proc.kill("SIGKILL");
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
  rmSync(dataDir, { recursive: true, force: true });
});

async function api(method: string, path: string, body?: unknown, token?: string, query = "") {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}${path}${query}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Keeps the tokens of a token response, and answers them. */
function tokens(what: string, body: { access_token: string; refresh_token: string }) {
  keep(`${what} access token`, body.access_token);
  keep(`${what} refresh token`, body.refresh_token);
  return body;
}

let user: { id: string; email: string };
let lastRefresh: string;
let magicToken: string;
let verifyToken: string;
let finalPassword: string;

describe("a server run through every flow that handles a secret", () => {
  it("signs up, in, refreshes, mails and uses a magic link, changes passwords and connects sockets", async () => {
    const email = `secrets-${tag}@example.com`;
    const password = keep("sign-up password", `first passphrase ${tag}`);
    const weak = keep("refused weak password", `Zq${tag.slice(0, 4)}`);
    expect(
      (await api("POST", "/api/auth/signup", { email, username: `s_${tag}`, password: weak })).status,
    ).toBe(422);
    const signedUp = await api("POST", "/api/auth/signup", { email, username: `s_${tag}`, password });
    expect(signedUp.status).toBe(201);
    tokens("sign-up", signedUp.body);
    user = { id: signedUp.body.user.id, email };

    const wrong = keep("wrong password", `not my passphrase ${tag}`);
    expect((await api("POST", "/api/auth/signin", { email, password: wrong })).status).toBe(401);
    expect((await api("POST", "/api/auth/signin", { password })).status).toBe(422);
    const signedIn = tokens("sign-in", (await api("POST", "/api/auth/signin", { email, password })).body);

    const refreshed = await api("POST", "/api/auth/refresh", { refresh_token: signedIn.refresh_token });
    expect(refreshed.status).toBe(200);
    tokens("refresh", refreshed.body);
    // The spent one again, past its grace (0): the session ends, and the server logs the reuse.
    const reused = await api("POST", "/api/auth/refresh", { refresh_token: signedIn.refresh_token });
    expect(reused.body.error.code).toBe("refresh_token_reused");

    expect((await api("POST", "/api/auth/magic-link", { email })).status).toBe(202);
    const deadline = Date.now() + 10_000;
    // The sign-up's verification mail comes too, before it or after.
    const linked = () => mails.find((m) => /magic-link\?token=/.test(m));
    while (!linked() && Date.now() < deadline) await Bun.sleep(20);
    magicToken = keep(
      "magic-link token",
      /magic-link\?token=([A-Za-z0-9_-]+)/.exec(linked() ?? "")?.[1] ?? "",
    );
    const proving = () => mails.find((m) => /verify-email\?token=/.test(m));
    while (!proving() && Date.now() < deadline) await Bun.sleep(20);
    verifyToken = keep(
      "email verification token",
      /verify-email\?token=([A-Za-z0-9_-]+)/.exec(proving() ?? "")?.[1] ?? "",
    );
    const verified = await api("POST", "/api/auth/magic-link/verify", { token: magicToken });
    expect(verified.status).toBe(200);
    const session = tokens("magic link", verified.body);
    expect((await api("POST", "/api/auth/magic-link/verify", { token: magicToken })).status).toBe(401);
    const madeUp = keep("made-up magic-link token", `madeup${tag}`.padEnd(43, "x"));
    expect((await api("POST", "/api/auth/magic-link/verify", { token: madeUp })).status).toBe(401);

    // The link proved the mailbox and removed the password: a new one is set, then changed.
    const set = keep("password set", `second passphrase ${tag}`);
    const access = session.access_token;
    expect((await api("POST", "/api/auth/change-password", { new_password: set }, access)).status).toBe(200);
    const badCurrent = keep("wrong current password", `wrong current ${tag}`);
    const refused = await api(
      "POST",
      "/api/auth/change-password",
      { current_password: badCurrent, new_password: `unused passphrase ${tag}` },
      access,
    );
    expect(refused.status).toBe(401);
    finalPassword = keep("changed password", `third passphrase ${tag}`);
    const changed = await api(
      "POST",
      "/api/auth/change-password",
      { current_password: set, new_password: finalPassword },
      access,
    );
    expect(changed.status).toBe(200);
    lastRefresh = session.refresh_token;

    expect((await api("GET", "/api/auth/me", undefined, undefined, `?access_token=${access}`)).status).toBe(
      401,
    );
    expect((await api("GET", "/api/auth/me", undefined, access)).status).toBe(200);
    const forged = keep("forged token", `${access.slice(0, access.lastIndexOf(".") + 1)}forged${tag}`);
    expect((await api("GET", "/api/auth/me", undefined, forged)).status).toBe(401);

    const ws = `${server.url.replace("http", "ws")}/ws/${user.id}/${verified.body.session_id}`;
    const sockets = [
      await connect(`${ws}?access_token=${access}`, ["parley.json"]),
      await connect(ws, ["parley.json"], { authorization: `Bearer ${access}` }),
      await connect(ws, ["parley.json", `bearer.${access}`]),
    ];
    for (const s of sockets) expect((await s.next((f) => f.type === "hello")).user_id).toBe(user.id);
    for (const s of sockets) s.close();
    const badUpgrade = await fetch(`${ws.replace("ws", "http")}?access_token=${forged}`, {
      headers: UPGRADE_HEADERS,
    });
    expect(badUpgrade.status).toBe(401);

    const metrics = (token: string) =>
      fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect((await metrics(env.METRICS_TOKEN)).status).toBe(200);
    const wrongMetrics = keep("wrong metrics token", `wrong-metrics-${tag}`);
    expect((await metrics(wrongMetrics)).status).toBeGreaterThanOrEqual(400);

    server.proc.kill("SIGTERM");
    expect(await server.proc.exited).toBe(0);
    output = server.lines.join("\n") + (await new Response(server.proc.stderr).text());
  }, 60_000);

  it("logged each request, and no secret it was given", () => {
    // The capture works: one line per request, trace level included.
    expect(output).toContain('"msg":"request"');
    expect(output).toContain('"path":"/api/auth/magic-link/verify"');
    expect(output).toContain("refresh token reused");
    const leaked = [...secrets].filter(([, value]) => output.includes(value)).map(([what]) => what);
    expect(leaked).toEqual([]);
    // A token's signature alone is as good as lost.
    const signatures = [...secrets]
      .filter(([what]) => what.endsWith("access token"))
      .filter(([, jwt]) => output.includes(jwt.slice(jwt.lastIndexOf(".") + 1)));
    expect(signatures).toEqual([]);
  });

  it("keeps passwords and tokens only hashed: no row, no byte of the database files, no Redis value holds one", async () => {
    const db = new Database(join(dataDir, "parley.db"), { readonly: true });
    try {
      const tables = db
        .query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((t) => t.name);
      expect(tables).toContain("refresh_tokens");
      const rows = tables.flatMap((t) => db.query(`SELECT * FROM "${t}"`).all());
      const text = JSON.stringify(rows);
      expect([...secrets].filter(([, value]) => text.includes(value)).map(([what]) => what)).toEqual([]);

      const { password_hash } = db
        .query<{ password_hash: string }, [string]>("SELECT password_hash FROM users WHERE id = ?1")
        .get(user.id) as { password_hash: string };
      expect(password_hash).toStartWith("$argon2id$");
      expect(await Bun.password.verify(finalPassword, password_hash)).toBe(true);
      // Each token is there, under its hash: what a thief of the file gets cannot be presented.
      const hashed = (table: string, token: string) =>
        db.query(`SELECT 1 FROM ${table} WHERE hash = ?1`).get(sha256(token)) !== null;
      expect(hashed("refresh_tokens", lastRefresh)).toBe(true);
      expect(hashed("magic_links", magicToken)).toBe(true);
      expect(hashed("email_verifications", verifyToken)).toBe(true);
    } finally {
      db.close();
    }
    for (const file of ["parley.db", "parley.db-wal"].map((f) => join(dataDir, f)).filter(existsSync)) {
      const bytes = readFileSync(file);
      expect([...secrets].filter(([, value]) => bytes.includes(value)).map(([what]) => what)).toEqual([]);
    }

    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${PREFIX}*`);
      const dump = await Promise.all(keys.map((k) => redis.dump(k)));
      const text = keys.join("\n") + dump.map((d) => d ?? "").join("\n");
      expect([...secrets].filter(([, value]) => text.includes(value)).map(([what]) => what)).toEqual([]);
    } finally {
      await redis.quit();
    }
  });
});
