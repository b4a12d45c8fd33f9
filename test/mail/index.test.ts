// createMailer: SMTP when SMTP_URL is set, the outbox file otherwise, and what it logs about the choice.

import { afterEach, describe, expect, it } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "../../src/lib/logger.ts";
import { createMailer, OutboxMailer, SmtpMailer } from "../../src/mail/index.ts";

describe("createMailer", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function dataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "parley-mail-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  function capturingLogger() {
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        logs.push(String(chunk));
        done();
      },
    });
    return { logs, logger: createLogger("info", sink) };
  }

  it("writes to the outbox under DATA_DIR when SMTP_URL is empty", async () => {
    const dir = await dataDir();
    const mailer = createMailer({ SMTP_URL: "", SMTP_FROM: "Parley <no-reply@localhost>", DATA_DIR: dir });
    cleanups.push(() => mailer.close());
    expect(mailer).toBeInstanceOf(OutboxMailer);
    expect((mailer as OutboxMailer).path).toBe(join(dir, "outbox.jsonl"));
  });

  it("delivers through SMTP when SMTP_URL is set, without logging the URL's credentials", async () => {
    const { logs, logger } = capturingLogger();
    const mailer = createMailer(
      {
        SMTP_URL: "smtp://user:hunter2@127.0.0.1:2525",
        SMTP_FROM: "Parley <no-reply@localhost>",
        DATA_DIR: "",
      },
      logger,
    );
    cleanups.push(() => mailer.close());
    expect(mailer).toBeInstanceOf(SmtpMailer);
    expect(logs.join("")).toContain("SMTP");
    expect(logs.join("")).not.toContain("hunter2");
  });
});

describe("the server's mail at boot", () => {
  it("says which way mail goes, once the deps are made, without the SMTP URL's credentials", async () => {
    const { harness } = await import("../helpers.ts");
    const outbox = await harness();
    const smtp = await harness({ SMTP_URL: "smtp://mailer:hunter2-secret@127.0.0.1:2525" });
    try {
      expect(outbox.logs.join("")).toContain("writing mail to the outbox file");
      const said = smtp.logs.join("");
      expect(said).toContain("mail: delivering through SMTP");
      expect(said).not.toContain("hunter2-secret");
    } finally {
      await outbox.close();
      await smtp.close();
    }
  });
});
