// The behaviour every Mailer must show, written once and run against each adapter (outbox file, SMTP).

import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import type { Mail, Mailer } from "../../src/mail/types.ts";
import { rejection } from "../helpers.ts";

/** A mailer plus a way to read back what it delivered, and to release both. */
export interface MailerHarness {
  mailer: Mailer;
  /** Resolves with everything delivered once at least `count` messages have arrived; rejects on timeout. */
  delivered(count: number): Promise<Mail[]>;
  close(): Promise<void>;
}

/** A sign-in link longer than a 76-column MIME line, so an encoder has to wrap it. */
export const SECRET_LINK = `https://parley.test/auth/verify?token=${"s3cr3t-".repeat(20)}end`;

export const sampleMail = (n = 0): Mail => ({
  to: `user${n}@example.test`,
  subject: `Your sign-in link #${n}`,
  text: `Hello Zoë,\n\nSign in with this link:\n${SECRET_LINK}\n\nIt works once, for 10 minutes.`,
});

/** Resolves with `p`, or rejects naming `what` once `ms` have passed. */
export function within<T>(p: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function mailerContract(label: string, start: () => Promise<MailerHarness>) {
  describe(`mailer contract: ${label}`, () => {
    let h: MailerHarness;

    beforeEach(async () => {
      h = await start();
    });
    afterEach(async () => {
      await h.close();
    });

    it("delivers recipient, subject and multi-line text unchanged, long link and accents included", async () => {
      const mail = sampleMail(1);
      await h.mailer.send(mail);
      expect(await h.delivered(1)).toEqual([mail]);
    });

    it("delivers every message of 20 concurrent sends", async () => {
      const mails = Array.from({ length: 20 }, (_, i) => sampleMail(i));
      await Promise.all(mails.map((m) => h.mailer.send(m)));
      const got = await h.delivered(20);
      const byRecipient = (a: Mail, b: Mail) => a.to.localeCompare(b.to);
      expect(got.toSorted(byRecipient)).toEqual(mails.toSorted(byRecipient));
    });

    it("finishes a send in flight before close resolves", async () => {
      const sending = h.mailer.send(sampleMail(2));
      await h.mailer.close();
      await sending;
      expect(await h.delivered(1)).toEqual([sampleMail(2)]);
    });

    it("rejects a send after close", async () => {
      await h.mailer.close();
      expect((await rejection(h.mailer.send(sampleMail(3)), Error)).message).toMatch(/after close/);
    });
  });
}
