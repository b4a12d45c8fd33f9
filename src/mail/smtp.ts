// Production mailer: delivers through an SMTP server with nodemailer, from SMTP_URL and SMTP_FROM.

import nodemailer from "nodemailer";
import type { Mail, Mailer } from "./types.ts";

type Transport = ReturnType<typeof nodemailer.createTransport>;

/** Fields nodemailer sets on its errors; all optional, since anything may reach a catch block. */
interface SmtpFailure {
  code?: unknown;
  command?: unknown;
  responseCode?: unknown;
}

/**
 * How long a connection and the server's greeting may take, and a third of how long a connected server
 * may stay silent. nodemailer's own (2 min, 30 s, 10 min) let a hung relay hold each magic link's send,
 * its socket, and shutdown for minutes. A URL may still set its own (`?socketTimeout=...`).
 */
export const SMTP_TIMEOUT_MS = 10_000;

export interface SmtpOptions {
  /** Replaces SMTP_TIMEOUT_MS (tests). */
  timeoutMs?: number;
}

export class SmtpMailer implements Mailer {
  private readonly transport: Transport;
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(
    url: string,
    private readonly from: string,
    options: SmtpOptions = {},
  ) {
    if (!/^smtps?:\/\//i.test(url))
      throw new Error("SmtpMailer: SMTP_URL must be an smtp:// or smtps:// URL");
    if (!from.trim()) throw new Error("SmtpMailer: SMTP_FROM must be a sender address (got an empty string)");
    // No `logger`/`debug` options: nodemailer's transcript logging would print the message, links included.
    const timeout = options.timeoutMs ?? SMTP_TIMEOUT_MS;
    this.transport = nodemailer.createTransport({
      url,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: 3 * timeout,
    });
  }

  send(mail: Mail): Promise<void> {
    if (this.closed) return Promise.reject(new Error("SmtpMailer: send after close"));
    const sending = this.deliver(mail);
    const tracked = sending.catch(() => {});
    this.inFlight.add(tracked);
    void tracked.then(() => this.inFlight.delete(tracked));
    return sending;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.inFlight);
    this.transport.close();
  }

  private async deliver(mail: Mail): Promise<void> {
    try {
      await this.transport.sendMail({ from: this.from, to: mail.to, subject: mail.subject, text: mail.text });
    } catch (err) {
      throw smtpError(err);
    }
  }
}

/**
 * A fresh Error built only from codes: nodemailer's own message and the server's reply text are dropped,
 * and so is `cause`, so no logger that serializes this error can print the message body.
 */
function smtpError(err: unknown): Error {
  const { code, command, responseCode } = (typeof err === "object" && err !== null ? err : {}) as SmtpFailure;
  const parts = [
    typeof code === "string" ? code : "EUNKNOWN",
    typeof command === "string" ? `during ${command.split(" ")[0]}` : "",
    typeof responseCode === "number" ? `(reply ${responseCode})` : "",
  ].filter(Boolean);
  const error = new Error(`SMTP send failed: ${parts.join(" ")}`);
  error.name = "SmtpError";
  return error;
}
