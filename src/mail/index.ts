// Picks the mail adapter from config: SMTP when SMTP_URL is set, otherwise the development outbox file.

import type { Config } from "../config.ts";
import type { Logger } from "../lib/logger.ts";
import { OutboxMailer } from "./outbox.ts";
import { SmtpMailer } from "./smtp.ts";
import type { Mailer } from "./types.ts";

export { OutboxMailer } from "./outbox.ts";
export { SmtpMailer } from "./smtp.ts";
export type { Mail, Mailer } from "./types.ts";

export type MailConfig = Pick<Config, "SMTP_URL" | "SMTP_FROM" | "DATA_DIR">;

export function createMailer(config: MailConfig, logger?: Logger): Mailer {
  if (config.SMTP_URL) {
    // The URL may carry credentials; say only that SMTP is in use.
    logger?.info("mail: delivering through SMTP");
    return new SmtpMailer(config.SMTP_URL, config.SMTP_FROM);
  }
  const outbox = new OutboxMailer(config.DATA_DIR);
  logger?.warn({ path: outbox.path }, "mail: SMTP_URL not set, writing mail to the outbox file instead");
  return outbox;
}
