// OutboxMailer: the shared contract, plus the file itself (JSON lines, no interleaving, mode 0600).

import { afterEach, describe, expect, it } from "bun:test";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type OutboxLine, OutboxMailer } from "../../src/mail/outbox.ts";
import { mailerContract, sampleMail } from "./contract.ts";

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "parley-mail-"));
  tempDirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(tempDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function readLines(path: string): Promise<OutboxLine[]> {
  const content = await readFile(path, "utf8");
  expect(content.endsWith("\n")).toBe(true);
  return content
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line) as OutboxLine);
}

mailerContract("outbox", async () => {
  const mailer = new OutboxMailer(await tempDir());
  return {
    mailer,
    // A send resolves only after its line is written, so the file is complete once the sends are.
    delivered: async () =>
      (await readLines(mailer.path)).map(({ to, subject, text }) => ({ to, subject, text })),
    close: () => mailer.close(),
  };
});

describe("OutboxMailer", () => {
  it("creates the missing data directory and an outbox only its owner can read", async () => {
    const dataDir = join(await tempDir(), "nested", "data");
    const mailer = new OutboxMailer(dataDir);
    await mailer.send(sampleMail());
    await mailer.close();
    expect(mailer.path).toBe(join(dataDir, "outbox.jsonl"));
    expect((await stat(mailer.path)).mode & 0o777).toBe(0o600);
  });

  it("writes one JSON object per line with to, subject, text and the ISO time it was sent", async () => {
    const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const mailer = new OutboxMailer(await tempDir(), () => now);
    const mail = sampleMail(1);
    await mailer.send(mail);
    await mailer.send(sampleMail(2));
    await mailer.close();
    const lines = await readLines(mailer.path);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({ ...mail, sent_at: "2026-01-02T03:04:05.000Z" });
    expect(Object.keys(lines[0] ?? {})).toEqual(["to", "subject", "text", "sent_at"]);
  });

  it("keeps 50 concurrent sends as 50 whole, parseable lines", async () => {
    const mailer = new OutboxMailer(await tempDir());
    // Bodies large enough that an interleaved write would split a line.
    const mails = Array.from({ length: 50 }, (_, i) => ({
      ...sampleMail(i),
      text: `${i}:${"x".repeat(20_000)}`,
    }));
    await Promise.all(mails.map((m) => mailer.send(m)));
    await mailer.close();
    const lines = await readLines(mailer.path);
    expect(lines).toHaveLength(50);
    expect(new Set(lines.map((l) => l.to))).toEqual(new Set(mails.map((m) => m.to)));
    for (const line of lines) expect(line.text).toBe(`${line.to.match(/\d+/)?.[0]}:${"x".repeat(20_000)}`);
  });

  it("appends to an existing outbox and tightens its mode to 0600", async () => {
    const dataDir = await tempDir();
    const path = join(dataDir, "outbox.jsonl");
    const earlier = `${JSON.stringify({ ...sampleMail(0), sent_at: new Date(0).toISOString() })}\n`;
    await writeFile(path, earlier);
    await chmod(path, 0o644);
    const mailer = new OutboxMailer(dataDir);
    await mailer.send(sampleMail(1));
    await mailer.close();
    expect((await readLines(path)).map((l) => l.to)).toEqual(["user0@example.test", "user1@example.test"]);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("rejects the send whose write fails and still writes the ones queued after it", async () => {
    const dataDir = await tempDir();
    const mailer = new OutboxMailer(dataDir);
    await mailer.send(sampleMail(0));
    // A directory where the outbox should be makes the next append fail.
    await rm(mailer.path);
    await Bun.write(join(mailer.path, "blocker"), "");
    const failing = mailer.send(sampleMail(1));
    const queued = mailer.send(sampleMail(2));
    await expect(failing).rejects.toThrow();
    await expect(queued).rejects.toThrow();
    await rm(mailer.path, { recursive: true });
    await mailer.send(sampleMail(3));
    await mailer.close();
    expect((await readLines(mailer.path)).map((l) => l.to)).toEqual(["user3@example.test"]);
  });

  it("refuses an empty DATA_DIR when built", () => {
    expect(() => new OutboxMailer("")).toThrow(/DATA_DIR/);
  });
});
