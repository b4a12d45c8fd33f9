// Every numeric setting refuses what it cannot mean: a word, a fraction, a value under its least or over
// its largest stops boot with a message naming the variable, and the server process exits 78 (EX_CONFIG)
// with that one line. Derived from the schema, so a variable added later is checked the same way.

import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, ConfigSchema, loadConfig } from "../src/config.ts";

const work = mkdtempSync(join(tmpdir(), "parley-config-limits-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface IntSchema {
  type: string;
  minimum: number;
  maximum: number;
  switch?: boolean;
}
const integers = Object.entries(ConfigSchema.properties as unknown as Record<string, IntSchema>).filter(
  ([, schema]) => schema.type === "integer",
);

/** The integer settings 0 means something for (README): every other one refuses 0 and below. */
const ZERO_MEANS = new Set([
  "PORT", // any free port
  "TRUST_PROXY", // no proxy
  "REFRESH_REUSE_GRACE_SECONDS", // no grace
  "RATE_LIMIT_BURST", // no burst
  "AUTH_RATE_LIMIT_BURST",
]);

/** What each integer variable must refuse: never a number it could mean, so the refusal is the bound's. */
function badValues(name: string, schema: IntSchema): string[] {
  const bad = ["1.5", "1e3", "0x10", "ten", String(schema.minimum - 1)];
  if (!schema.switch) bad.push("true");
  if (!ZERO_MEANS.has(name)) bad.push("0", "-1");
  if (schema.maximum < Number.MAX_SAFE_INTEGER) bad.push(String(schema.maximum + 1));
  return bad;
}

describe("numeric settings", () => {
  it.each(integers)(
    "%s refuses a word, a fraction and values out of its bounds (0 unless 0 means something), naming itself",
    (name, schema) => {
      for (const value of badValues(name, schema)) {
        let thrown: unknown;
        try {
          loadConfig({ DATA_DIR: work, [name]: value }, { devKeys: false });
        } catch (err) {
          thrown = err;
        }
        expect({ value, error: thrown instanceof ConfigError }).toEqual({ value, error: true });
        expect({ value, names: (thrown as Error).message.startsWith(`${name}: `) }).toEqual({
          value,
          names: true,
        });
      }
    },
  );

  it.each(integers)("%s takes its least and its largest value", (name, schema) => {
    // The heartbeat must stay under the idle timeout (config.ts): each bound is tried with the other's room.
    const room: Record<string, string> =
      name === "WS_HEARTBEAT_INTERVAL" ? { WS_CONNECTION_TIMEOUT: "900" } : { WS_HEARTBEAT_INTERVAL: "1" };
    // A message's largest frame must fit WS_BACKPRESSURE_LIMIT twice (config.ts): the limits on content and
    // reactions are tried with the most room.
    if (name !== "WS_BACKPRESSURE_LIMIT") room.WS_BACKPRESSURE_LIMIT = String(1024 * 1024 * 1024);
    // ...and WS_BACKPRESSURE_LIMIT with theirs least.
    else
      Object.assign(room, {
        MAX_MESSAGE_LENGTH: "1",
        MAX_REACTIONS_PER_MESSAGE: "1",
        MAX_GROUP_MEMBERS: "2",
      });
    const largest = name === "WS_HEARTBEAT_INTERVAL" ? 899 : schema.maximum;
    const cost =
      name === "PASSWORD_HASH_MEMORY_KIB" || name === "PASSWORD_HASH_TIME"
        ? { PASSWORD_HASH_MEMORY_KIB: "65536", PASSWORD_HASH_TIME: "20" }
        : {};
    for (const value of [schema.minimum, largest]) {
      const env = { DATA_DIR: work, ...room, ...cost, [name]: String(value) };
      expect(loadConfig(env, { devKeys: false }).config[name as keyof typeof env]).toBe(value as never);
    }
  });
});

describe("the server process", () => {
  const boot = async (env: Record<string, string>) => {
    const proc = Bun.spawn([process.execPath, "run", "src/index.ts"], {
      cwd: join(import.meta.dir, ".."),
      env: { PATH: process.env.PATH ?? "", DATA_DIR: join(work, "data"), PORT: "0", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, said] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    return { code, said: said.trim() };
  };

  it.each([
    ["WS_MAX_PAYLOAD", "0"],
    ["RATE_LIMIT_PER_MINUTE", "-5"],
    ["WS_MAX_CONNECTIONS_PER_USER", "lots"],
    ["LOCKOUT_MINUTES", "99999999"],
  ])(
    "exits 78 with one line naming %s when it is %p",
    async (name, value) => {
      const { code, said } = await boot({ [name]: value });
      expect(code).toBe(78);
      expect(said.split("\n")).toEqual([expect.stringContaining(`configuration error: ${name}: `)]);
    },
    30_000,
  );
});
