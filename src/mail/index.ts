// Picks the mailer: SMTP when SMTP_URL is set, the outbox file otherwise.

import type { Config } from "../config.ts";
import { OutboxMailer } from "./outbox.ts";
import { SmtpMailer } from "./smtp.ts";
import type { Mailer } from "./types.ts";

export function createMailer(config: Pick<Config, "SMTP_URL" | "SMTP_FROM" | "DATA_DIR">): Mailer {
  return config.SMTP_URL
    ? new SmtpMailer(config.SMTP_URL, config.SMTP_FROM)
    : new OutboxMailer(config.DATA_DIR);
}
