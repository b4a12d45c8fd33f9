// Development mail: one JSON object per line in DATA_DIR/outbox.jsonl, readable by people and tests.

import { mkdirSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import type { Mail, Mailer } from "./types.ts";

export class OutboxMailer implements Mailer {
  readonly path: string;
  /** Appends run one after another so lines never interleave. */
  private tail: Promise<void> = Promise.resolve();

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, "outbox.jsonl");
  }

  send(mail: Mail): Promise<void> {
    const line = `${JSON.stringify({ to: mail.to, subject: mail.subject, text: mail.text, sent_at: new Date().toISOString() })}\n`;
    // The file holds sign-in links: readable by the owner only.
    const write = this.tail.then(() => appendFile(this.path, line, { mode: 0o600 }));
    this.tail = write.catch(() => {});
    return write;
  }

  async close() {
    await this.tail;
  }
}
