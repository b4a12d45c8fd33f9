// Production mail over SMTP with nodemailer.

import nodemailer, { type Transporter } from "nodemailer";
import type { Mail, Mailer } from "./types.ts";

export class SmtpMailer implements Mailer {
  private transport: Transporter;

  constructor(
    url: string,
    private from: string,
  ) {
    this.transport = nodemailer.createTransport(url);
  }

  async send(mail: Mail): Promise<void> {
    try {
      await this.transport.sendMail({ from: this.from, to: mail.to, subject: mail.subject, text: mail.text });
    } catch (err) {
      // SMTP errors may quote the message; the message carries a sign-in link, so only the code travels.
      const code = (err as { code?: string; responseCode?: number }) ?? {};
      throw new Error(`SMTP send failed (${code.code ?? "error"} ${code.responseCode ?? ""})`.trim());
    }
  }

  async close() {
    this.transport.close();
  }
}
