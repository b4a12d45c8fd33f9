import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "../../../src/lib/crypto.ts";
import { call, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness({ PUBLIC_URL: "https://chat.example.com" });
});
afterAll(() => h.close());

interface OutboxMail {
  to: string;
  subject: string;
  text: string;
  sent_at: string;
}

/** The sign-in mails in the outbox (each sign-up mails a verification link too: not these). */
function outbox(): OutboxMail[] {
  const file = join(h.dataDir, "outbox.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as OutboxMail)
    .filter((m) => m.subject.includes("sign-in link"));
}

async function requestLink(email: string) {
  const res = await call(h.app, "POST", "/api/auth/magic-link", { body: { email } });
  await h.deps.auth.settled();
  return res;
}

function tokenFor(email: string): string {
  const mail = outbox().findLast((m) => m.to === email);
  const match =
    mail && /https:\/\/chat\.example\.com\/auth\/magic-link\?token=([A-Za-z0-9_-]+)/.exec(mail.text);
  if (!match?.[1]) throw new Error(`no magic link mailed to ${email}`);
  return match[1];
}

const verify = (token: string) => call(h.app, "POST", "/api/auth/magic-link/verify", { body: { token } });

describe("magic links", () => {
  it("answers 202 and mails a link to an existing account", async () => {
    const user = await signup(h.app);
    const res = await requestLink(user.email.toUpperCase());
    expect(res.status).toBe(202);
    const mail = outbox().findLast((m) => m.to === user.email);
    expect(mail).toBeDefined();
    expect(mail?.subject).toContain("sign-in link");
    expect(Number.isNaN(Date.parse(mail?.sent_at ?? ""))).toBe(false);
  });

  it("answers 202 for an unknown email too, and mails nothing", async () => {
    const before = outbox().length;
    const res = await requestLink("nobody-at-all@example.com");
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ status: "accepted" });
    expect(outbox().length).toBe(before);
  });

  it("signs in with the link once: 200 token response, then 401 invalid_token", async () => {
    const user = await signup(h.app);
    await requestLink(user.email);
    const token = tokenFor(user.email);
    const first = await verify(token);
    expect(first.status).toBe(200);
    expect(first.body.user.id).toBe(user.id);
    expect((await call(h.app, "GET", "/api/auth/me", { token: first.body.access_token })).status).toBe(200);
    const again = await verify(token);
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe("invalid_token");
  });

  it("refuses a link older than 10 minutes", async () => {
    const user = await signup(h.app);
    await requestLink(user.email);
    const token = tokenFor(user.email);
    h.clock.advance(10 * 60_000 + 1);
    const res = await verify(token);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("invalid_token");
  });

  it("lets the owner of a locked account in by a mailed link: someone else's wrong passwords cannot keep them out", async () => {
    const user = await signup(h.app);
    const signin = (password: string) =>
      call(h.app, "POST", "/api/auth/signin", { body: { email: user.email, password } });
    for (let i = 0; i < h.deps.config.LOCKOUT_THRESHOLD; i++)
      expect((await signin("a stranger's guess")).status).toBe(401);
    expect((await signin(user.password)).body.error.code).toBe("account_locked");
    await requestLink(user.email);
    const res = await verify(tokenFor(user.email));
    expect(res.status).toBe(200);
    expect(typeof res.body.access_token).toBe("string");
  });

  it("refuses a link asked for before the password was changed", async () => {
    const user = await signup(h.app);
    await requestLink(user.email);
    const before = tokenFor(user.email);
    const changed = await call(h.app, "POST", "/api/auth/change-password", {
      token: user.token,
      body: { current_password: user.password, new_password: "a brand new passphrase 42" },
    });
    expect(changed.status).toBe(200);
    expect((await verify(before)).body.error.code).toBe("invalid_token");
    // A link asked for after it signs in.
    await requestLink(user.email);
    expect((await verify(tokenFor(user.email))).status).toBe(200);
  });

  it("stores the token hashed and never logs it", async () => {
    const user = await signup(h.app);
    await requestLink(user.email);
    const token = tokenFor(user.email);
    // The database and its WAL, where a row lies until a checkpoint: the hash is found there (so these are
    // the bytes that hold the row), the token is not.
    const files = ["parley.db", "parley.db-wal"].map((f) => join(h.dataDir, f)).filter(existsSync);
    const bytes = files.map((f) => readFileSync(f));
    expect(bytes.some((b) => b.includes(sha256(token)))).toBe(true);
    expect(bytes.some((b) => b.includes(token))).toBe(false);
    await verify(token);
    expect(h.logs.join("").includes(token)).toBe(false);
  });

  it("refuses a made-up token and a bad email", async () => {
    expect((await verify("made-up-token")).body.error.code).toBe("invalid_token");
    const bad = await call(h.app, "POST", "/api/auth/magic-link", { body: { email: "nope" } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.field).toBe("email");
  });
});

describe("magic links over SMTP", () => {
  it("mails the link through SMTP_URL, and the link signs in", async () => {
    const { SMTPServer } = await import("smtp-server");
    const bodies: string[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      onData(stream, _session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          bodies.push(
            Buffer.concat(chunks)
              .toString("utf8")
              .replace(/=\r?\n/g, "")
              .replace(/=3D/g, "="),
          );
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const address = server.server.address();
    if (!address || typeof address === "string") throw new Error("no port");
    const smtp = await harness({
      SMTP_URL: `smtp://127.0.0.1:${address.port}`,
      PUBLIC_URL: "https://chat.example.com",
    });
    try {
      const user = await signup(smtp.app);
      expect(
        (await call(smtp.app, "POST", "/api/auth/magic-link", { body: { email: user.email } })).status,
      ).toBe(202);
      await smtp.deps.auth.settled();
      const token = /magic-link\?token=([A-Za-z0-9_-]+)/.exec(bodies.join("\n"))?.[1];
      expect(token).toBeDefined();
      const res = await call(smtp.app, "POST", "/api/auth/magic-link/verify", { body: { token } });
      expect(res.status).toBe(200);
      expect(res.body.user.id).toBe(user.id);
      expect(existsSync(join(smtp.dataDir, "outbox.jsonl"))).toBe(false);
    } finally {
      await smtp.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
