import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../src/config.ts";
import { leastBackpressureLimit } from "../src/realtime/frame-bound.ts";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "parley-config-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const STRONG = "k".repeat(40);

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    const { config } = loadConfig({ DATA_DIR: tempDir() });
    expect(config).toMatchObject({
      PORT: 8000,
      DATABASE_NAME: "messaging_app",
      ALGORITHM: "HS256",
      ACCESS_TOKEN_EXPIRE_MINUTES: 30,
      REFRESH_TOKEN_EXPIRE_DAYS: 7,
      MAX_FILE_SIZE: 104857600,
      ALLOWED_FILE_TYPES: "image/jpeg,image/png,image/gif,application/pdf",
      WS_HEARTBEAT_INTERVAL: 30,
      WS_CONNECTION_TIMEOUT: 300,
      RATE_LIMIT_PER_MINUTE: 60,
      RATE_LIMIT_BURST: 10,
      LOCKOUT_THRESHOLD: 5,
      LOCKOUT_MINUTES: 15,
      EMAIL_VERIFICATION_TTL_HOURS: 48,
      PUBLIC_URL: "http://localhost:8000",
      REDIS_PREFIX: "parley:",
      PASSWORD_HASH_MEMORY_KIB: 65536,
      PASSWORD_HASH_TIME: 2,
      REUSE_PORT: false,
    });
  });

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["ACCESS_TOKEN_EXPIRE_MINUTES", "0"],
    ["EMAIL_VERIFICATION_TTL_HOURS", "0"],
    ["EMAIL_VERIFICATION_TTL_HOURS", "721"],
    ["ALGORITHM", "none"],
    ["ALGORITHM", "RS256"],
    ["LOG_LEVEL", "loud"],
    ["TRUST_PROXY", "maybe"],
    ["TRUST_PROXY", "-1"],
    ["TRUST_PROXY", "1.5"],
    ["TRUST_PROXY", "11"],
    ["MONGODB_URL", "http://localhost"],
    ["REDIS_URL", "not a url"],
    ["REDIS_PREFIX", "has spaces"],
    ["REDIS_PREFIX", "x".repeat(65)],
    ["PUBLIC_URL", "ftp://x"],
    ["NODE_ENV", "staging"],
    ["PASSWORD_HASH_MEMORY_KIB", "4096"],
    ["PASSWORD_HASH_TIME", "0"],
    ["WS_MAX_CONNECTIONS", "0"],
    ["WS_MAX_PUBLIC_PER_IP", "0"],
    ["METRICS_TOKEN", "short"],
    ["METRICS_TOKEN", "has spaces in it but long enough"],
    ["METRICS_TOKEN", "x".repeat(257)],
    // 15 characters: 30 UTF-16 units, which counted as enough before.
    ["METRICS_TOKEN", "😀".repeat(15)],
    ["REUSE_PORT", "maybe"],
    // Past what Bun's listener takes (it is given four times this): boot crashed in listen with a stack.
    // Not one sender address: the mail went out with an empty envelope sender, or every send failed.
    ["SMTP_FROM", "Parley"],
    ["SMTP_FROM", "Parley <no-reply>"],
    ["SMTP_FROM", "a@example.com, b@example.com"],
    ["WS_BACKPRESSURE_LIMIT", "9007199254740991"],
    ["WS_BACKPRESSURE_LIMIT", String(2 ** 30 + 1)],
    // Past a week: a lockout's end no longer fit the store's integer, and every failed sign-in was a 500.
    ["LOCKOUT_MINUTES", "10081"],
    ["LOCKOUT_MINUTES", "9007199254740991"],
  ])("stops on %s=%p with a message naming the variable", (name, value) => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).toThrow(name);
  });

  it.each([
    [undefined, 0],
    ["false", 0],
    ["0", 0],
    ["true", 1],
    ["1", 1],
    ["2", 2],
    ["10", 10],
  ])("takes TRUST_PROXY=%p as %p trusted proxies", (value, proxies) => {
    expect(loadConfig({ DATA_DIR: tempDir(), TRUST_PROXY: value }).config.TRUST_PROXY).toBe(proxies);
  });

  it("shares the port only among processes that share a Redis (REUSE_PORT needs REDIS_URL)", () => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), REUSE_PORT: "true" })).toThrow(
      "REUSE_PORT: processes that share a port must share a Redis too; set REDIS_URL",
    );
    const env = { DATA_DIR: tempDir(), REDIS_URL: "redis://127.0.0.1:6379" };
    expect(loadConfig({ ...env, REUSE_PORT: "true" }).config.REUSE_PORT).toBe(true);
    expect(loadConfig({ ...env, REUSE_PORT: "off" }).config.REUSE_PORT).toBe(false);
    expect(loadConfig(env).config.REUSE_PORT).toBe(false);
  });

  it("refuses a heartbeat no shorter than the idle timeout: clients pinging as told would be closed as idle", () => {
    const env = { DATA_DIR: tempDir() };
    for (const [beat, timeout] of [
      ["300", undefined],
      ["301", "300"],
      ["60", "60"],
      ["1000000", undefined],
    ]) {
      expect(() =>
        loadConfig({ ...env, WS_HEARTBEAT_INTERVAL: beat, WS_CONNECTION_TIMEOUT: timeout }),
      ).toThrow("WS_HEARTBEAT_INTERVAL: ");
    }
    const { config } = loadConfig({ ...env, WS_HEARTBEAT_INTERVAL: "59", WS_CONNECTION_TIMEOUT: "60" });
    expect([config.WS_HEARTBEAT_INTERVAL, config.WS_CONNECTION_TIMEOUT]).toEqual([59, 60]);
  });

  it("refuses a WS_BACKPRESSURE_LIMIT a message of MAX_MESSAGE_LENGTH could pass alone, naming both", () => {
    const env = { DATA_DIR: tempDir(), MAX_REACTIONS_PER_MESSAGE: "1" };
    // A message of 1 MiB is a frame over 1 MiB in any encoding: its every receiver would be closed (4001).
    for (const [length, limit] of [
      ["1048576", undefined],
      [undefined, "200000"],
      ["100000", "1048576"],
    ]) {
      const load = () => loadConfig({ ...env, MAX_MESSAGE_LENGTH: length, WS_BACKPRESSURE_LIMIT: limit });
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(/^WS_BACKPRESSURE_LIMIT: .*MAX_MESSAGE_LENGTH/);
    }
    // The least limit it takes is twice the largest frame (frame-bound.test.ts checks that bound).
    const least = leastBackpressureLimit({
      MAX_MESSAGE_LENGTH: 1048576,
      MAX_REACTIONS_PER_MESSAGE: 1,
      MAX_GROUP_MEMBERS: 1024,
    });
    expect(least).toBeGreaterThan(2 * 6 * 1048576);
    const at = { ...env, MAX_MESSAGE_LENGTH: "1048576", WS_BACKPRESSURE_LIMIT: String(least) };
    expect(loadConfig(at).config.WS_BACKPRESSURE_LIMIT).toBe(least);
    expect(() => loadConfig({ ...at, WS_BACKPRESSURE_LIMIT: String(least - 1) })).toThrow(
      "WS_BACKPRESSURE_LIMIT: ",
    );
    // The defaults leave room.
    expect(loadConfig({ DATA_DIR: env.DATA_DIR }).config.WS_BACKPRESSURE_LIMIT).toBeGreaterThanOrEqual(
      leastBackpressureLimit({
        MAX_MESSAGE_LENGTH: 16384,
        MAX_REACTIONS_PER_MESSAGE: 1000,
        MAX_GROUP_MEMBERS: 1024,
      }),
    );
  });

  it("refuses a WS_BACKPRESSURE_LIMIT a group's receipts frame could pass, naming MAX_GROUP_MEMBERS", () => {
    // A resume's receipts frame lists a group's every member: 20,000 of them make over 1.6 MB as JSON.
    const env = { DATA_DIR: tempDir(), MAX_GROUP_MEMBERS: "20000" };
    expect(() => loadConfig(env)).toThrow(/^WS_BACKPRESSURE_LIMIT: .*MAX_GROUP_MEMBERS 20000/);
    const least = leastBackpressureLimit({
      MAX_MESSAGE_LENGTH: 16384,
      MAX_REACTIONS_PER_MESSAGE: 1000,
      MAX_GROUP_MEMBERS: 20000,
    });
    const at = { ...env, WS_BACKPRESSURE_LIMIT: String(least) };
    expect(loadConfig(at).config.MAX_GROUP_MEMBERS).toBe(20000);
    expect(() => loadConfig({ ...at, WS_BACKPRESSURE_LIMIT: String(least - 1) })).toThrow(
      /^WS_BACKPRESSURE_LIMIT: .*MAX_GROUP_MEMBERS/,
    );
  });

  it("refuses a WS_BACKPRESSURE_LIMIT a message's MAX_REACTIONS_PER_MESSAGE reactions could pass, naming both", () => {
    // Every frame of a message carries all its reactions: 20,000 of them make a frame over 4 MB as JSON.
    const env = { DATA_DIR: tempDir(), MAX_REACTIONS_PER_MESSAGE: "20000" };
    expect(() => loadConfig(env)).toThrow(/^WS_BACKPRESSURE_LIMIT: .*MAX_REACTIONS_PER_MESSAGE 20000/);
    const least = leastBackpressureLimit({
      MAX_MESSAGE_LENGTH: 16384,
      MAX_REACTIONS_PER_MESSAGE: 20000,
      MAX_GROUP_MEMBERS: 1024,
    });
    expect(least).toBeGreaterThan(2 * 20000 * 200);
    const at = { ...env, WS_BACKPRESSURE_LIMIT: String(least) };
    expect(loadConfig(at).config.MAX_REACTIONS_PER_MESSAGE).toBe(20000);
    expect(() => loadConfig({ ...at, WS_BACKPRESSURE_LIMIT: String(least - 1) })).toThrow(
      "WS_BACKPRESSURE_LIMIT: ",
    );
  });

  it("takes SMTP_FROM as one address, with or without a display name", () => {
    for (const from of [
      "no-reply@example.com",
      "Parley <no-reply@example.com>",
      '"Parley, Inc." <a@b.example>',
    ]) {
      expect(loadConfig({ DATA_DIR: tempDir(), SMTP_FROM: from }).config.SMTP_FROM).toBe(from);
    }
  });

  it("says what TRUST_PROXY takes when it gets something else", () => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), TRUST_PROXY: "maybe" })).toThrow(
      'TRUST_PROXY: expected true, false or an integer (got "maybe")',
    );
    expect(() => loadConfig({ DATA_DIR: tempDir(), TRUST_PROXY: "11" })).toThrow(
      "TRUST_PROXY: Expected integer to be less or equal to 10",
    );
  });

  it("lists the values a variable of a few choices takes when it gets another (not 'Expected union value')", () => {
    const cases: [string, string, string][] = [
      ["LOG_LEVEL", "warning", "fatal, error, warn, info, debug, trace, silent"],
      ["NODE_ENV", "staging", "development, production, test"],
      ["ALGORITHM", "RS256", "HS256, HS384, HS512"],
    ];
    for (const [name, value, choices] of cases) {
      expect(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).toThrow(
        new ConfigError(`${name}: expected one of ${choices} (got "${value}")`),
      );
    }
  });

  it("takes a replica set's MongoDB string (several hosts, which is no URL) and an SRV one", () => {
    for (const url of [
      "mongodb://user:secret@h1:27017,h2:27017,h3:27017/parley?replicaSet=rs0",
      "mongodb://localhost",
      "mongodb+srv://cluster0.example.net/?retryWrites=true",
    ]) {
      expect(loadConfig({ DATA_DIR: tempDir(), MONGODB_URL: url }).config.MONGODB_URL).toBe(url);
    }
    for (const url of ["mongodb:/h1", "mongodb://", "mongodb:// h1", "postgres://h1"]) {
      expect(() => loadConfig({ DATA_DIR: tempDir(), MONGODB_URL: url })).toThrow("MONGODB_URL");
    }
  });

  it("counts METRICS_TOKEN's 16 to 256 characters as code points: an emoji is one", () => {
    const env = { DATA_DIR: tempDir() };
    for (const token of ["😀".repeat(16), "😀".repeat(256)])
      expect(loadConfig({ ...env, METRICS_TOKEN: token }).config.METRICS_TOKEN).toBe(token);
    expect(() => loadConfig({ ...env, METRICS_TOKEN: "😀".repeat(257) })).toThrow("METRICS_TOKEN: ");
  });

  it("never echoes a refused secret: a METRICS_TOKEN, a URL with a password", () => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), METRICS_TOKEN: "hunter2" })).toThrow(ConfigError);
    expect(() => loadConfig({ DATA_DIR: tempDir(), METRICS_TOKEN: "hunter2" })).not.toThrow("hunter2");
    for (const name of ["REDIS_URL", "SMTP_URL", "MONGODB_URL"]) {
      const env = { DATA_DIR: tempDir(), [name]: "user:hunter2@ bad url" };
      expect(() => loadConfig(env)).toThrow(name);
      expect(() => loadConfig(env)).not.toThrow("hunter2");
    }
  });

  it("refuses an argon2id cost under OWASP's minimum, and accepts one at it", () => {
    const cost = (memory: string, time: string) =>
      loadConfig({ DATA_DIR: tempDir(), PASSWORD_HASH_MEMORY_KIB: memory, PASSWORD_HASH_TIME: time });
    expect(() => cost("8192", "4")).toThrow(ConfigError);
    expect(() => cost("8192", "4")).toThrow("PASSWORD_HASH_MEMORY_KIB × PASSWORD_HASH_TIME");
    expect(() => cost("19456", "1")).toThrow("at least 35840");
    expect(cost("9216", "4").config.PASSWORD_HASH_MEMORY_KIB).toBe(9216);
    expect(cost("7168", "5").config.PASSWORD_HASH_TIME).toBe(5);
    expect(cost("47104", "1").config.PASSWORD_HASH_TIME).toBe(1);
  });

  it.each([
    ["missing", undefined],
    ["the example value", "your-super-secret-key-change-in-production"],
    ["short", "short-key"],
  ])("refuses in production a SECRET_KEY that is %s", (_, value) => {
    const env = { NODE_ENV: "production", DATA_DIR: tempDir(), SECRET_KEY: value, ENCRYPTION_KEY: STRONG };
    expect(() => loadConfig(env)).toThrow("SECRET_KEY");
  });

  it("refuses in production an ENCRYPTION_KEY that is the example value", () => {
    const env = {
      NODE_ENV: "production",
      DATA_DIR: tempDir(),
      SECRET_KEY: STRONG,
      ENCRYPTION_KEY: "your-32-character-encryption-key",
    };
    expect(() => loadConfig(env)).toThrow("ENCRYPTION_KEY");
  });

  it("accepts strong keys in production", () => {
    const { config, warnings } = loadConfig({
      NODE_ENV: "production",
      DATA_DIR: tempDir(),
      SECRET_KEY: STRONG,
      ENCRYPTION_KEY: STRONG,
      // Behind a proxy that ends TLS: production requires HTTPS (test/https.test.ts).
      TRUST_PROXY: "1",
      PUBLIC_URL: "https://chat.example.com",
    });
    expect(config.SECRET_KEY).toBe(STRONG);
    expect(config.REQUIRE_HTTPS).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("generates development keys once, keeps them under DATA_DIR, and warns", () => {
    const dir = tempDir();
    const first = loadConfig({ DATA_DIR: dir });
    const second = loadConfig({ DATA_DIR: dir });
    expect(first.config.SECRET_KEY.length).toBeGreaterThanOrEqual(32);
    expect(second.config.SECRET_KEY).toBe(first.config.SECRET_KEY);
    expect(second.config.ENCRYPTION_KEY).toBe(first.config.ENCRYPTION_KEY);
    expect(first.warnings.join(" ")).toContain("SECRET_KEY");
    const kept = JSON.parse(readFileSync(join(dir, "secrets.json"), "utf8"));
    expect(kept.SECRET_KEY).toBe(first.config.SECRET_KEY);
  });

  it("gives nodes started at once on one DATA_DIR the same development keys", async () => {
    const dir = tempDir();
    const script = `import { loadConfig } from ${JSON.stringify(join(import.meta.dir, "../src/config.ts"))};
const { config } = loadConfig({ DATA_DIR: ${JSON.stringify(dir)} });
console.log(config.SECRET_KEY + " " + config.ENCRYPTION_KEY);`;
    const nodes = Array.from({ length: 6 }, () =>
      Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" }),
    );
    const keys = await Promise.all(nodes.map((p) => new Response(p.stdout).text()));
    expect(await Promise.all(nodes.map((p) => p.exited))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]?.trim().split(" ")).toHaveLength(2);
    const kept = JSON.parse(readFileSync(join(dir, "secrets.json"), "utf8"));
    expect(keys[0]?.trim()).toBe(`${kept.SECRET_KEY} ${kept.ENCRYPTION_KEY}`);
  });
});

describe("documentation", () => {
  it("lists every configuration variable in .env.example and in the README table", async () => {
    const { ConfigSchema } = await import("../src/config.ts");
    const root = join(import.meta.dir, "..");
    const example = readFileSync(join(root, ".env.example"), "utf8");
    const readme = readFileSync(join(root, "README.md"), "utf8");
    for (const name of Object.keys(ConfigSchema.properties)) {
      expect({ name, inExample: new RegExp(`^${name}=`, "m").test(example) }).toEqual({
        name,
        inExample: true,
      });
      expect({ name, inReadme: readme.includes(`| \`${name}\` |`) }).toEqual({ name, inReadme: true });
    }
    // A copy of it as .env must not give every development server the same public keys.
    expect(example).toMatch(/^SECRET_KEY=$/m);
    expect(example).toMatch(/^ENCRYPTION_KEY=$/m);
  });
});
