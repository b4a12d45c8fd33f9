// Development mailer: appends each message as one JSON line to <DATA_DIR>/outbox.jsonl instead of sending it.

import { appendFile, chmod, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Mail, Mailer } from "./types.ts";

/** The outbox holds working sign-in links, so only the server's own user may read it. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

export interface OutboxLine extends Mail {
  /** ISO 8601 time the line was written. */
  sent_at: string;
}

export class OutboxMailer implements Mailer {
  readonly path: string;
  private readonly dir: string;
  /** Appends run one after another, so lines never interleave however many sends overlap. */
  private tail: Promise<void> = Promise.resolve();
  private ready = false;
  private closed = false;

  constructor(
    dataDir: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    if (!dataDir) throw new Error("OutboxMailer: DATA_DIR must be a directory path (got an empty string)");
    this.dir = dataDir;
    this.path = join(dataDir, "outbox.jsonl");
  }

  send(mail: Mail): Promise<void> {
    if (this.closed) return Promise.reject(new Error("OutboxMailer: send after close"));
    const line: OutboxLine = {
      to: mail.to,
      subject: mail.subject,
      text: mail.text,
      sent_at: this.now().toISOString(),
    };
    const write = this.tail.then(() => this.append(`${JSON.stringify(line)}\n`));
    // A failed append rejects its own send but must not stop the sends queued behind it.
    this.tail = write.catch(() => {});
    return write;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
  }

  private async append(line: string): Promise<void> {
    if (!this.ready) {
      await mkdir(this.dir, { recursive: true, mode: DIR_MODE });
      await appendFile(this.path, "", { mode: FILE_MODE });
      // `mode` only applies when the file is created; an outbox left by an older run is tightened too.
      await chmod(this.path, FILE_MODE);
      this.ready = true;
    }
    await appendFile(this.path, line, { mode: FILE_MODE });
  }
}
