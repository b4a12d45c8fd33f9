import { afterAll, afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { createMailer } from "../../src/mail/index.ts";
import { OutboxMailer } from "../../src/mail/outbox.ts";
import { SmtpMailer } from "../../src/mail/smtp.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "parley-mail-"));
  dirs.push(d);
  return d;
};

describe("OutboxMailer", () => {
  it("appends one JSON object per line to DATA_DIR/outbox.jsonl, creating the directory", async () => {
    const dir = join(tempDir(), "nested", "data");
    const mailer = createMailer({ SMTP_URL: "", SMTP_FROM: "x@y", DATA_DIR: dir });
    expect(mailer).toBeInstanceOf(OutboxMailer);
    await mailer.send({ to: "a@example.com", subject: "Hello", text: "line one\nline two" });
    const lines = readFileSync(join(dir, "outbox.jsonl"), "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const mail = JSON.parse(lines[0] as string);
    expect(mail).toMatchObject({ to: "a@example.com", subject: "Hello", text: "line one\nline two" });
    expect(Number.isNaN(Date.parse(mail.sent_at))).toBe(false);
    expect(statSync(join(dir, "outbox.jsonl")).mode & 0o777).toBe(0o600);
  });

  it("keeps lines whole under 50 concurrent sends", async () => {
    const dir = tempDir();
    const mailer = new OutboxMailer(dir);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        mailer.send({ to: `u${i}@example.com`, subject: "s", text: "x".repeat(5000) }),
      ),
    );
    const lines = readFileSync(join(dir, "outbox.jsonl"), "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(50);
    expect(new Set(lines.map((l) => JSON.parse(l).to)).size).toBe(50);
  });
});

describe("SmtpMailer against a real SMTP server", () => {
  let server: SMTPServer | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  async function startServer(opts: { refuse?: string } = {}) {
    const received: { from: string; to: string[]; raw: string }[] = [];
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      onRcptTo(address, _session, callback) {
        if (opts.refuse && address.address === opts.refuse) return callback(new Error("550 no such mailbox"));
        callback();
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString("utf8"),
          });
          callback();
        });
      },
    });
    const s = server;
    await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
    const address = s.server.address();
    if (!address || typeof address === "string") throw new Error("no port");
    return { received, url: `smtp://127.0.0.1:${address.port}` };
  }

  it("delivers the mail with recipient, sender, subject and body", async () => {
    const { received, url } = await startServer();
    const mailer = createMailer({
      SMTP_URL: url,
      SMTP_FROM: "Parley <no-reply@parley.test>",
      DATA_DIR: tempDir(),
    });
    expect(mailer).toBeInstanceOf(SmtpMailer);
    const link = "https://chat.example.com/auth/magic-link?token=abcDEF123_-";
    await mailer.send({
      to: "alice@example.com",
      subject: "Your Parley sign-in link",
      text: `Sign in:\n${link}\n`,
    });
    await mailer.close();
    expect(received).toHaveLength(1);
    const mail = received[0]!;
    expect(mail.to).toEqual(["alice@example.com"]);
    expect(mail.from).toBe("no-reply@parley.test");
    expect(mail.raw).toContain("Subject: Your Parley sign-in link");
    // Undo quoted-printable soft breaks and escapes before looking for the link.
    const body = mail.raw
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
    expect(body).toContain(link);
  });

  it("rejects when the server refuses the recipient, without the mail text in the error", async () => {
    const { url } = await startServer({ refuse: "ghost@example.com" });
    const mailer = new SmtpMailer(url, "no-reply@parley.test");
    const secret = "token=very-secret-token-value";
    let error: unknown;
    try {
      await mailer.send({ to: "ghost@example.com", subject: "link", text: secret });
    } catch (err) {
      error = err;
    }
    await mailer.close();
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).not.toContain(secret);
  });
});
