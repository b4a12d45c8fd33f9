// SmtpMailer against a real SMTP server on port 0: the shared contract, the envelope, and refusals that
// must not leak the message text into the error.

import { afterEach, describe, expect, it } from "bun:test";
import { SMTP_TIMEOUT_MS, SmtpMailer } from "../../src/mail/smtp.ts";
import { rejection } from "../helpers.ts";
import { mailerContract, SECRET_LINK, sampleMail } from "./contract.ts";
import { parseMessage, type SinkOptions, startSmtpSink } from "./smtp-sink.ts";

const FROM = "Parley <no-reply@parley.test>";

mailerContract("smtp", async () => {
  const sink = await startSmtpSink();
  const mailer = new SmtpMailer(sink.url, FROM);
  return {
    mailer,
    delivered: async (count) => (await sink.waitFor(count)).map((r) => parseMessage(r.raw)),
    async close() {
      await mailer.close();
      await sink.close();
    },
  };
});

describe("SmtpMailer", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(options: SinkOptions = {}) {
    const sink = await startSmtpSink(options);
    cleanups.push(() => sink.close());
    const mailer = new SmtpMailer(sink.url, FROM);
    cleanups.push(() => mailer.close());
    return { sink, mailer };
  }

  it("sends from SMTP_FROM to the recipient in the envelope, with subject and body in the message", async () => {
    const { sink, mailer } = await setup();
    const mail = sampleMail(7);
    await mailer.send(mail);
    const [got] = await sink.waitFor(1);
    expect(got?.mailFrom).toBe("no-reply@parley.test");
    expect(got?.rcptTo).toEqual(["user7@example.test"]);
    expect(got?.raw).toMatch(/^From: Parley <no-reply@parley\.test>\r$/m);
    expect(got?.raw).toMatch(/^Subject: Your sign-in link #7\r$/m);
    expect(parseMessage(got?.raw ?? "").text).toBe(mail.text);
  });

  it("rejects when the server refuses the recipient, without the text or link in the error", async () => {
    const { sink, mailer } = await setup({ refuseRecipient: () => "No such user here" });
    const mail = sampleMail(8);
    const err = await rejection(mailer.send(mail), Error);
    expect(err.message).toMatch(/^SMTP send failed: \S+/);
    expect(err.message).toContain("550");
    expect(err.message).not.toContain(SECRET_LINK);
    expect(err.message).not.toContain("s3cr3t");
    expect(err.message).not.toContain(mail.text);
    expect(JSON.stringify(err)).not.toContain("s3cr3t");
    expect(String(err.stack)).not.toContain("s3cr3t");
    expect(err.cause).toBeUndefined();
    expect(sink.received).toEqual([]);
  });

  it("rejects without the text when nothing listens at SMTP_URL", async () => {
    const sink = await startSmtpSink();
    await sink.close();
    const mailer = new SmtpMailer(sink.url, FROM);
    cleanups.push(() => mailer.close());
    const err = await rejection(mailer.send(sampleMail(9)), Error);
    expect(err.message).toMatch(/^SMTP send failed: /);
    expect(err.message).not.toContain("s3cr3t");
  });

  it("gives up on an SMTP server that takes the connection and never answers, without the text", async () => {
    // Left to nodemailer's defaults, a silent server held a send 30 s (one that stalls later, 10 min).
    expect(SMTP_TIMEOUT_MS).toBeLessThanOrEqual(15_000);
    const held: { end(): void }[] = [];
    const silent = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: (s) => void held.push(s), data() {} },
    });
    cleanups.push(async () => {
      for (const s of held) s.end();
      silent.stop(true);
    });
    const mailer = new SmtpMailer(`smtp://127.0.0.1:${silent.port}`, FROM, { timeoutMs: 300 });
    cleanups.push(() => mailer.close());
    const started = Date.now();
    const err = await rejection(mailer.send(sampleMail(10)), Error);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err.message).toMatch(/^SMTP send failed: /);
    expect(err.message).not.toContain("s3cr3t");
    expect(held.length).toBe(1);
  });

  it("refuses a bad SMTP_URL or an empty SMTP_FROM when built", () => {
    expect(() => new SmtpMailer("http://mail.example.test", FROM)).toThrow(/SMTP_URL/);
    expect(() => new SmtpMailer("smtp://127.0.0.1:2525", " ")).toThrow(/SMTP_FROM/);
  });
});
