// DATA_DIR's lock: one process alone, or any number that share a Redis; held by the system, so a process
// that dies, however it dies, leaves it free. Also through createDeps, which every server boots with.

import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { closeDeps, createDeps } from "../../src/deps.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { brokerLockFile, type DataDirMode, lockDataDir } from "../../src/store/sqlite/data-dir-lock.ts";
import { TEST_SECRET } from "../helpers.ts";

const work = mkdtempSync(join(tmpdir(), "parley-lock-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(work, `d${++dirs}`);

const refusal = (dir: string, mode: DataDirMode, brokerFile?: string) => {
  try {
    lockDataDir(dir, mode, brokerFile).release();
    return null;
  } catch (err) {
    return err;
  }
};

describe("lockDataDir", () => {
  it.each([
    ["alone", "alone", "refused", false],
    ["alone", "shared", "refused", false],
    ["shared", "alone", "refused", false],
    ["shared", "shared", "let in", true],
  ] as const)("held %s, one asking %s is %s", (held, asked, _, allowed) => {
    const dir = freshDir();
    const first = lockDataDir(dir, held);
    try {
      const err = refusal(dir, asked);
      if (allowed) expect(err).toBeNull();
      else {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as Error).message).toContain(dir);
        expect((err as Error).message).toContain("REDIS_URL");
      }
    } finally {
      first.release();
    }
  });

  it("says which DATA_DIR it cannot use, and why: a path through a file, a lock file that is not SQLite's", async () => {
    const file = join(work, "a-file");
    await Bun.write(file, "not a directory");
    const under = refusal(join(file, "data"), "alone");
    expect(under).toBeInstanceOf(ConfigError);
    expect((under as Error).message).toContain(`DATA_DIR ${join(file, "data")}: cannot open parley.lock`);
    const dir = freshDir();
    await Bun.write(join(dir, "parley.lock"), "x".repeat(4096));
    for (const mode of ["alone", "shared"] as const) {
      const garbled = refusal(dir, mode);
      expect(garbled).toBeInstanceOf(ConfigError);
      expect((garbled as Error).message).toContain(`DATA_DIR ${dir}: cannot lock parley.lock`);
    }
  });

  it("names a broker by Redis's host, port, database and the prefix, not by how the URL is spelled", () => {
    const file = brokerLockFile("redis://127.0.0.1:6379", "parley:");
    expect(file).toMatch(/^parley\.broker-[0-9a-f]{16}\.lock$/);
    for (const same of [
      "redis://127.0.0.1",
      "redis://127.0.0.1:6379/0",
      "redis://:pw@127.0.0.1:6379/",
      "redis://localhost:6379",
      "redis://LOCALHOST",
      "redis://[::1]:6379/0",
      "redis://127.0.0.1:6379/?db=0",
    ])
      expect(brokerLockFile(same, "parley:")).toBe(file);
    for (const [url, prefix] of [
      ["redis://127.0.0.1:6379", "other:"],
      ["redis://127.0.0.1:6380", "parley:"],
      ["redis://127.0.0.1:6379/1", "parley:"],
      // The database as ioredis reads it: the path, else a `db` parameter.
      ["redis://127.0.0.1:6379/?db=1", "parley:"],
      ["redis://10.0.0.5:6379", "parley:"],
      ["redis://localhost:6380", "parley:"],
      ["redis://127.0.0.2:6379", "parley:"],
    ] as const)
      expect(brokerLockFile(url, prefix)).not.toBe(file);
    expect(brokerLockFile("redis://127.0.0.1:6379/?db=1", "parley:")).toBe(
      brokerLockFile("redis://127.0.0.1:6379/1", "parley:"),
    );
  });

  it("lets in processes in shared with one broker, and refuses one with another while any holds it", () => {
    const dir = freshDir();
    const one = brokerLockFile("redis://127.0.0.1:6379", "a:");
    const another = brokerLockFile("redis://127.0.0.1:6379", "b:");
    const first = lockDataDir(dir, "shared", one);
    const second = lockDataDir(dir, "shared", one);
    const err = refusal(dir, "shared", another);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(
      `DATA_DIR ${dir} is in use by a Parley process with another REDIS_URL`,
    );
    first.release();
    expect(refusal(dir, "shared", another)).toBeInstanceOf(ConfigError);
    second.release();
    // The first broker's file is still there, held by nobody: it stops no one.
    const third = lockDataDir(dir, "shared", another);
    expect((refusal(dir, "shared", one) as Error).message).toContain("another REDIS_URL or REDIS_PREFIX");
    third.release();
    expect(refusal(dir, "shared", one)).toBeNull();
  });

  it("waits out another process's look at its broker's file (a start with another broker)", async () => {
    // Two processes with different brokers starting at once take each other's file for a moment: here
    // another process holds this broker's file for 20 ms, while this one asks for it (and waits, blocked).
    const dir = freshDir();
    const mine = brokerLockFile("redis://127.0.0.1:6379", "a:");
    lockDataDir(dir, "shared", mine).release();
    const glance = Bun.spawn(
      [
        process.execPath,
        "-e",
        `import { Database } from "bun:sqlite";
         const db = new Database(${JSON.stringify(join(dir, mine))});
         db.exec("PRAGMA locking_mode = EXCLUSIVE");
         db.exec("BEGIN EXCLUSIVE");
         console.log("held");
         Bun.sleepSync(20);
         db.exec("COMMIT");
         db.close();`,
      ],
      { stdout: "pipe", stderr: "inherit" },
    );
    const reader = glance.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("held");
    expect(refusal(dir, "shared", mine)).toBeNull();
    await glance.exited;
  });

  it("refuses to start while another broker's process holds its own broker's file", () => {
    const dir = freshDir();
    const mine = brokerLockFile("redis://127.0.0.1:6379", "a:");
    lockDataDir(dir, "shared", mine).release();
    const look = new Database(join(dir, mine));
    look.exec("PRAGMA locking_mode = EXCLUSIVE");
    look.exec("BEGIN EXCLUSIVE");
    try {
      expect((refusal(dir, "shared", mine) as Error).message).toContain("another REDIS_URL or REDIS_PREFIX");
    } finally {
      look.exec("COMMIT");
      look.close();
    }
    expect(refusal(dir, "shared", mine)).toBeNull();
  });

  it("is free again once released, and a second release does nothing", () => {
    const dir = freshDir();
    const first = lockDataDir(dir, "alone");
    first.release();
    first.release();
    const second = lockDataDir(dir, "alone");
    expect(second.mode).toBe("alone");
    second.release();
  });

  it("is held by another process until it is killed, then free", async () => {
    const dir = freshDir();
    const script = `
      import { lockDataDir } from ${JSON.stringify(join(import.meta.dir, "../../src/store/sqlite/data-dir-lock.ts"))};
      globalThis.held = lockDataDir(${JSON.stringify(dir)}, "alone");
      Bun.gc(true);
      console.log("held");
      setInterval(() => {}, 1000);
    `;
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    try {
      const reader = child.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("held");
      expect(refusal(dir, "alone")).toBeInstanceOf(ConfigError);
      expect(refusal(dir, "shared")).toBeInstanceOf(ConfigError);
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    expect(refusal(dir, "alone")).toBeNull();
  });
});

describe("a server's deps over a DATA_DIR", () => {
  const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
  const config = (dir: string, env: Record<string, string> = {}) =>
    loadConfig({
      NODE_ENV: "test",
      DATA_DIR: dir,
      SECRET_KEY: TEST_SECRET,
      ENCRYPTION_KEY: TEST_SECRET,
      ...env,
    }).config;
  const logger = createLogger("silent");

  it("refuses a second node without REDIS_URL, and lets it in once the first has closed", async () => {
    const dir = freshDir();
    const first = await createDeps(config(dir), logger);
    await expect(createDeps(config(dir), logger)).rejects.toBeInstanceOf(ConfigError);
    await expect(createDeps(config(dir, { REDIS_URL }), logger)).rejects.toThrow("without REDIS_URL");
    await closeDeps(first);
    await closeDeps(await createDeps(config(dir), logger));
  });

  it("lets nodes that share a Redis in together, and refuses one without it among them", async () => {
    const dir = freshDir();
    const a = await createDeps(config(dir, { REDIS_URL }), logger);
    const b = await createDeps(config(dir, { REDIS_URL }), logger);
    try {
      await expect(createDeps(config(dir), logger)).rejects.toThrow("in use by another Parley process");
    } finally {
      await closeDeps(a);
      await closeDeps(b);
    }
  });

  it("refuses a node with another REDIS_PREFIX or another Redis database among them, until they have closed", async () => {
    const dir = freshDir();
    const others: Record<string, string>[] = [
      { REDIS_URL, REDIS_PREFIX: "elsewhere:" },
      { REDIS_URL: `${REDIS_URL.replace(/\/\d*$/, "")}/3` },
    ];
    const a = await createDeps(config(dir, { REDIS_URL }), logger);
    try {
      for (const env of others)
        await expect(createDeps(config(dir, env), logger)).rejects.toThrow(
          "in use by a Parley process with another REDIS_URL or REDIS_PREFIX",
        );
    } finally {
      await closeDeps(a);
    }
    await closeDeps(await createDeps(config(dir, { REDIS_URL, REDIS_PREFIX: "elsewhere:" }), logger));
  });
});
