// Environment -> typed, validated Config. A bad value stops boot with a message naming the variable.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Static, Type as T, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { newSecret } from "./lib/ids.ts";
import { largestMessageFrame, largestReceiptsFrame, leastBackpressureLimit } from "./realtime/frame-bound.ts";

const Int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER, description?: string) =>
  T.Integer({ default: def, minimum: min, maximum: max, description });
const Str = (def: string, description?: string) => T.String({ default: def, description });
/** An Int that also takes true and false, as 1 and 0: for settings that were a switch before they counted. */
const IntOrSwitch = (def: number, min: number, max: number, description: string) =>
  T.Integer({ default: def, minimum: min, maximum: max, description, switch: true });

/** Every variable, its default and its bounds. README and .env.example list the same table. */
export const ConfigSchema = T.Object({
  NODE_ENV: T.Union([T.Literal("development"), T.Literal("production"), T.Literal("test")], {
    default: "development",
  }),
  PORT: Int(8000, 0, 65535),
  HOST: Str("0.0.0.0"),
  REUSE_PORT: T.Boolean({
    default: false,
    description:
      "share PORT with other Parley processes on this host (SO_REUSEPORT: the kernel spreads connections); needs REDIS_URL",
  }),
  DATA_DIR: Str("./data"),
  PUBLIC_URL: Str(""),
  CORS_ORIGINS: Str(""),
  LOG_LEVEL: T.Union(
    ["fatal", "error", "warn", "info", "debug", "trace", "silent"].map((l) => T.Literal(l)),
    { default: "info" },
  ),
  TRUST_PROXY: IntOrSwitch(
    0,
    0,
    10,
    "proxies in front of Parley, each appending to X-Forwarded-For (true: 1); 0: the peer address",
  ),
  REQUIRE_HTTPS: T.Boolean({
    default: false,
    description:
      "refuse what did not come over HTTPS or WSS (403 https_required; /health, /ready and /metrics excepted) and send HSTS; unset: true in production",
  }),
  TLS_CERT_FILE: Str(
    "",
    "PEM certificate (chain) for Parley to serve HTTPS and WSS itself, with TLS_KEY_FILE",
  ),
  TLS_KEY_FILE: Str("", "PEM private key of TLS_CERT_FILE"),

  MONGODB_URL: Str(""),
  DATABASE_NAME: T.String({ default: "messaging_app", minLength: 1, pattern: "^[A-Za-z0-9_-]+$" }),
  REDIS_URL: Str(""),
  REDIS_PREFIX: T.String({
    default: "parley:",
    pattern: "^[A-Za-z0-9_.:-]{1,64}$",
    description: "starts every Redis key and channel: deployments sharing one Redis need different ones",
  }),
  SMTP_URL: Str(""),
  SMTP_FROM: Str("Parley <no-reply@localhost>"),

  SECRET_KEY: Str(""),
  ALGORITHM: T.Union([T.Literal("HS256"), T.Literal("HS384"), T.Literal("HS512")], { default: "HS256" }),
  ACCESS_TOKEN_EXPIRE_MINUTES: Int(30, 1, 24 * 60),
  REFRESH_TOKEN_EXPIRE_DAYS: Int(7, 1, 365),
  REFRESH_REUSE_GRACE_SECONDS: Int(
    20,
    0,
    300,
    "a spent refresh token coming back this soon after it was spent gets new tokens (its answer was lost) instead of ending the session; 0: never",
  ),
  SESSION_MAX_DAYS: Int(30, 1, 3650),
  ENCRYPTION_KEY: Str(""),
  MAGIC_LINK_TTL_MINUTES: Int(10, 1, 24 * 60),
  EMAIL_VERIFICATION_TTL_HOURS: Int(
    48,
    1,
    30 * 24,
    "hours the link mailed at sign-up (or resent) to prove the address keeps working",
  ),

  MAX_FILE_SIZE: Int(104857600, 1),
  ALLOWED_FILE_TYPES: Str("image/jpeg,image/png,image/gif,application/pdf"),
  MAX_JSON_BODY_BYTES: Int(1048576, 1024),
  MAX_MESSAGE_LENGTH: Int(16384, 1, 1048576),
  // Every frame of a message carries its whole reaction list (one entry per member and emoji), as does
  // its row: each counts in WS_BACKPRESSURE_LIMIT's least value (frame-bound.ts).
  MAX_REACTIONS_PER_MESSAGE: Int(
    1000,
    1,
    50_000,
    "reactions one message may hold, each one member's emoji; one more is refused (409 reaction_limit)",
  ),
  // Every view of a group lists its members, and a resume's receipts frame their positions (frame-bound.ts).
  MAX_GROUP_MEMBERS: Int(
    1024,
    2,
    100_000,
    "members a group may have; one more is refused (409 group_full). A channel has no such bound",
  ),
  MAX_REACTION_EMOJI: Int(
    20,
    1,
    1000,
    "different emoji among one message's reactions; a new one past it is refused (409 reaction_limit)",
  ),
  // A page of 1000 events of the largest messages, each with its reactions, would be ~80 MB of JSON.
  MAX_PAGE_BYTES: Int(
    4 * 1024 * 1024,
    64 * 1024,
    256 * 1024 * 1024,
    "bytes of messages a history or events page holds, about: it ends before the one that would pass it",
  ),

  WS_HEARTBEAT_INTERVAL: Int(30, 1),
  // At least 2: the heartbeat (at least 1) must be shorter (loadConfig), so 1 could never boot.
  WS_CONNECTION_TIMEOUT: Int(300, 2, 900),
  WS_MAX_PAYLOAD: Int(65536, 1024, 16 * 1024 * 1024),
  WS_RATE_PER_SECOND: Int(20, 1),
  WS_RATE_BURST: Int(40, 1),
  WS_MAX_CONNECTIONS_PER_USER: Int(10, 1),
  WS_MAX_CONNECTIONS: Int(100_000, 1, Number.MAX_SAFE_INTEGER, "open sockets on one node, of every kind"),
  WS_MAX_PUBLIC_PER_IP: Int(
    100,
    1,
    Number.MAX_SAFE_INTEGER,
    "public-channel sockets from one client address",
  ),
  // Bun's own limit is four times this (app.ts); past 1 GiB a socket's queue is no longer a limit at all.
  // At least what the least limits allow (checkBackpressureRoom): a value under it could never boot.
  WS_BACKPRESSURE_LIMIT: Int(
    1048576,
    leastBackpressureLimit({ MAX_MESSAGE_LENGTH: 1, MAX_REACTIONS_PER_MESSAGE: 1, MAX_GROUP_MEMBERS: 2 }),
    1024 * 1024 * 1024,
  ),
  WS_DRAIN_TIMEOUT: Int(
    30,
    1,
    900,
    "seconds a paced catch-up waits for its socket to take any of its queue before it is closed as a slow consumer (4001)",
  ),
  RESUME_MAX: Int(1000, 1, 100000),
  WS_MAX_CHANNELS: Int(50, 1, 10000),

  RATE_LIMIT_PER_MINUTE: Int(60, 1),
  RATE_LIMIT_BURST: Int(10, 0),
  AUTH_RATE_LIMIT_PER_MINUTE: Int(10, 1),
  AUTH_RATE_LIMIT_BURST: Int(5, 0),
  MAGIC_LINK_PER_HOUR: Int(5, 1),
  LOCKOUT_THRESHOLD: Int(5, 1),
  // A lockout's end is now plus this: with no bound, a large one did not fit the store's integer column
  // and every failed sign-in answered 500. Past a week a lockout is a way to shut anyone out, not a defence.
  LOCKOUT_MINUTES: Int(
    15,
    1,
    7 * 24 * 60,
    "failed sign-ins are counted in a window this long, and lock for this long",
  ),
  PASSWORD_HASH_MEMORY_KIB: Int(
    65536,
    7168,
    4 * 1024 * 1024,
    "argon2id memory per password hash, in KiB (with PASSWORD_HASH_TIME at least OWASP's minimum)",
  ),
  PASSWORD_HASH_TIME: Int(2, 1, 20, "argon2id passes per password hash"),
  METRICS_TOKEN: T.String({
    default: "",
    description:
      "bearer token (16-256 characters, no spaces) a Prometheus scraper presents at GET /metrics; empty: no /metrics",
  }),
});

export type Config = Static<typeof ConfigSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Values the original spec and earlier copies of .env.example shipped: never acceptable in production. */
const PLACEHOLDER_KEYS = new Set([
  "your-super-secret-key-change-in-production",
  "your-32-character-encryption-key",
  "your-production-secret-key",
  "your-production-encryption-key",
  "change-me",
]);

const KEY_NAMES = ["SECRET_KEY", "ENCRYPTION_KEY"] as const;
const MIN_KEY_BYTES = 32;

export interface LoadResult {
  config: Config;
  warnings: string[];
}

/**
 * Parse `env` into a Config. Throws ConfigError naming the first bad variable.
 * Development keys that are missing are generated once and kept in DATA_DIR/secrets.json, unless
 * `devKeys` is false. With `serving` false (the admin CLI, which signs, serves and mails nothing) the
 * keys, TLS files and PUBLIC_URL are neither required nor read, and no key is generated: a one-off
 * `parley admin` in the production image needs its store's variables alone, and must not write into a
 * mistyped DATA_DIR.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  { devKeys = true, serving = true }: { devKeys?: boolean; serving?: boolean } = {},
): LoadResult {
  const raw: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    raw[name] = coerce(name, value.trim(), schema);
  }
  const withDefaults = Value.Default(ConfigSchema, raw);
  const firstError = Value.Errors(ConfigSchema, withDefaults).First();
  if (firstError) {
    const name = firstError.path.replace(/^\//, "");
    // A variable of a few choices (LOG_LEVEL, NODE_ENV, ALGORITHM): TypeBox says "Expected union value".
    const choices = (firstError.schema.anyOf as TSchema[] | undefined)?.map((s) => s.const);
    const why = choices?.every((c) => typeof c === "string")
      ? `expected one of ${choices.join(", ")}`
      : firstError.message;
    throw new ConfigError(`${name}: ${why} (got ${JSON.stringify(env[name])})`);
  }
  const config = withDefaults as Config;
  config.DATA_DIR = resolve(config.DATA_DIR);
  if (!env.REQUIRE_HTTPS?.trim()) config.REQUIRE_HTTPS = config.NODE_ENV === "production";
  // A replica set's string lists several hosts (h1:27017,h2:27017), which is no URL: the scheme is checked
  // here and the driver reads the rest when the store opens (and refuses it there, naming MONGODB_URL).
  if (config.MONGODB_URL && !/^mongodb(\+srv)?:\/\/[^/\s]/.test(config.MONGODB_URL)) {
    throw new ConfigError("MONGODB_URL: expected a mongodb:// or mongodb+srv:// connection string");
  }
  if (config.REDIS_URL) checkUrl("REDIS_URL", config.REDIS_URL, ["redis:", "rediss:"]);
  if (config.SMTP_URL) checkUrl("SMTP_URL", config.SMTP_URL, ["smtp:", "smtps:"]);
  // Checked with or without SMTP_URL: the outbox's mail would go out the same way once SMTP is set. A
  // name alone left the envelope sender empty, an address without a domain failed every send.
  if (!SENDER.test(config.SMTP_FROM)) {
    throw new ConfigError(
      `SMTP_FROM: expected one sender address, name@domain or "Name <name@domain>" (got ${JSON.stringify(config.SMTP_FROM)})`,
    );
  }
  // Processes sharing a port each get some of the clients: unless they meet through one Redis, a message
  // sent through one would never reach the sockets held by the others.
  if (config.REUSE_PORT && !config.REDIS_URL) {
    throw new ConfigError(
      "REUSE_PORT: processes that share a port must share a Redis too; set REDIS_URL (the same on every process)",
    );
  }
  checkPasswordCost(config);
  // A client pings every WS_HEARTBEAT_INTERVAL (the hello says so); the gateway closes one silent for
  // WS_CONNECTION_TIMEOUT (4003). A beat as long as the timeout closes clients that do as they are told.
  if (config.WS_HEARTBEAT_INTERVAL >= config.WS_CONNECTION_TIMEOUT) {
    throw new ConfigError(
      `WS_HEARTBEAT_INTERVAL: must be shorter than WS_CONNECTION_TIMEOUT (${config.WS_CONNECTION_TIMEOUT} s), ` +
        `or sockets pinging every ${config.WS_HEARTBEAT_INTERVAL} s as told are closed as idle`,
    );
  }
  checkBackpressureRoom(config);
  // /metrics has no rate limit of its own: its token must be too long to guess. Never echoed. Characters
  // are code points, as every limit in characters counts them (lib/text.ts).
  if (config.METRICS_TOKEN && !/^\S{16,256}$/u.test(config.METRICS_TOKEN)) {
    throw new ConfigError("METRICS_TOKEN: expected 16 to 256 characters without spaces");
  }
  for (const origin of splitList(config.CORS_ORIGINS)) {
    if (origin !== "*") checkUrl("CORS_ORIGINS", origin, ["http:", "https:"]);
  }
  if (!serving) return { config, warnings: [] };
  const keyWarnings = resolveKeys(config, devKeys);
  const tlsWarnings = checkTls(config);
  // After the TLS check: with HTTPS required and no way to see it, that is what the operator must fix first.
  checkPublicUrl(config);
  return { config, warnings: [...tlsWarnings, ...keyWarnings] };
}

/**
 * PUBLIC_URL, the base of the links in mail, defaults to this server on localhost: a development setting.
 * With HTTPS required (production) one must be given, and https://: the default would send every magic
 * link to localhost (over http:// behind a proxy that ends TLS), and an http:// one would carry its
 * sign-in token across the network in clear.
 */
function checkPublicUrl(config: Config) {
  if (!config.PUBLIC_URL) {
    if (config.REQUIRE_HTTPS) {
      throw new ConfigError(
        "PUBLIC_URL: required with REQUIRE_HTTPS (the default in production): the https:// origin of your " +
          "app, where the links in mail lead (without it they would lead to localhost)",
      );
    }
    config.PUBLIC_URL = `${config.TLS_CERT_FILE ? "https" : "http"}://localhost:${config.PORT}`;
  }
  checkUrl("PUBLIC_URL", config.PUBLIC_URL, ["http:", "https:"]);
  if (config.REQUIRE_HTTPS && new URL(config.PUBLIC_URL).protocol !== "https:") {
    throw new ConfigError(
      "PUBLIC_URL: with REQUIRE_HTTPS (the default in production) it must be an https:// URL",
    );
  }
}

/**
 * Both TLS files or neither, each a readable PEM file. HTTPS required needs a way for a request to be seen
 * as HTTPS: TLS served here, or a trusted proxy's X-Forwarded-Proto; without either every request but the
 * probes would be refused, so the server does not start.
 */
function checkTls(config: Config): string[] {
  const [certFile, keyFile] = [config.TLS_CERT_FILE, config.TLS_KEY_FILE];
  if (Boolean(certFile) !== Boolean(keyFile)) {
    const missing = certFile ? "TLS_KEY_FILE" : "TLS_CERT_FILE";
    throw new ConfigError(`${missing}: TLS_CERT_FILE and TLS_KEY_FILE go together (set both, or neither)`);
  }
  const warnings: string[] = [];
  if (certFile) {
    // Read here rather than when listening, where TLS's own errors name neither file nor variable.
    const cert = pem("TLS_CERT_FILE", certFile, (text) => new X509Certificate(text));
    const key = pem("TLS_KEY_FILE", keyFile, (text) => createPrivateKey(text));
    if (!cert.checkPrivateKey(key))
      throw new ConfigError(
        `TLS_KEY_FILE: ${keyFile} is not the private key of the certificate in TLS_CERT_FILE`,
      );
    if (Date.parse(cert.validTo) < Date.now())
      warnings.push(`TLS_CERT_FILE: the certificate expired on ${cert.validTo}; clients will refuse it`);
  }
  if (config.REQUIRE_HTTPS && !certFile && config.TRUST_PROXY === 0) {
    throw new ConfigError(
      "REQUIRE_HTTPS: requests must come over HTTPS (the default in production), and this server could " +
        "not tell one that did: set TLS_CERT_FILE and TLS_KEY_FILE to serve HTTPS itself, or TRUST_PROXY " +
        "behind a proxy that ends TLS and sets X-Forwarded-Proto, or REQUIRE_HTTPS=false",
    );
  }
  return warnings;
}

/** The file at `path`, read by `parse`; either failing stops boot naming the variable (never the contents). */
function pem<T>(name: string, path: string, parse: (text: string) => T): T {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new ConfigError(`${name}: cannot read ${path}${typeof code === "string" ? ` (${code})` : ""}`);
  }
  try {
    return parse(text);
  } catch {
    throw new ConfigError(
      `${name}: ${path} does not hold a PEM ${name === "TLS_KEY_FILE" ? "private key" : "certificate"}`,
    );
  }
}

/**
 * OWASP's argon2id minimums trade memory for passes (46 MiB × 1, 19 MiB × 2, 12 MiB × 3, 9 MiB × 4,
 * 7 MiB × 5): memory × passes must reach the smallest of those products.
 */
export const MIN_PASSWORD_WORK_KIB = 7168 * 5;

function checkPasswordCost(config: Config) {
  const work = config.PASSWORD_HASH_MEMORY_KIB * config.PASSWORD_HASH_TIME;
  if (work < MIN_PASSWORD_WORK_KIB) {
    throw new ConfigError(
      `PASSWORD_HASH_MEMORY_KIB × PASSWORD_HASH_TIME must be at least ${MIN_PASSWORD_WORK_KIB} ` +
        `(OWASP's argon2id minimum; got ${config.PASSWORD_HASH_MEMORY_KIB} × ${config.PASSWORD_HASH_TIME} = ${work})`,
    );
  }
}

/**
 * The sweep closes a socket whose queue passes WS_BACKPRESSURE_LIMIT as a slow consumer, and no pacing can
 * split a frame: a limit under a legal message's frame closed every receiver of that message, whose
 * clients reconnected, resumed, were sent it again and were closed again; one under a group's receipts
 * frame closed each of its members at every resume.
 */
function checkBackpressureRoom(config: Config) {
  const least = leastBackpressureLimit(config);
  if (config.WS_BACKPRESSURE_LIMIT >= least) return;
  // A resume's receipts frame lists a group's every member: past the largest message's, it is the measure.
  if (largestReceiptsFrame(config) > largestMessageFrame(config)) {
    throw new ConfigError(
      `WS_BACKPRESSURE_LIMIT: must be at least ${least} bytes with MAX_GROUP_MEMBERS ${config.MAX_GROUP_MEMBERS} ` +
        `(got ${config.WS_BACKPRESSURE_LIMIT}): twice the largest receipts frame such a group makes ` +
        `(${largestReceiptsFrame(config)} bytes, as JSON), or its members are closed as slow consumers when ` +
        "they resume; raise WS_BACKPRESSURE_LIMIT or lower MAX_GROUP_MEMBERS",
    );
  }
  throw new ConfigError(
    `WS_BACKPRESSURE_LIMIT: must be at least ${least} bytes with MAX_MESSAGE_LENGTH ${config.MAX_MESSAGE_LENGTH} ` +
      `and MAX_REACTIONS_PER_MESSAGE ${config.MAX_REACTIONS_PER_MESSAGE} (got ${config.WS_BACKPRESSURE_LIMIT}): ` +
      `twice the largest frame such a message can make (${largestMessageFrame(config)} bytes, as JSON), ` +
      "or its receivers are closed as slow consumers; raise WS_BACKPRESSURE_LIMIT or lower MAX_MESSAGE_LENGTH " +
      "or MAX_REACTIONS_PER_MESSAGE",
  );
}

/** One mail address, bare or after a display name in angle brackets. */
const SENDER = /^(?:[^\s<>@,"]+@[^\s<>@,"]+|[^<>@]*<[^\s<>@,"]+@[^\s<>@,"]+>)$/;

export const splitList = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

function coerce(name: string, value: string, schema: TSchema): unknown {
  if (schema.type === "integer") {
    const flag = schema.switch ? parseSwitch(value) : undefined;
    if (flag !== undefined) return flag ? 1 : 0;
    if (!/^-?\d+$/.test(value)) {
      const expected = schema.switch ? "true, false or an integer" : "an integer";
      throw new ConfigError(`${name}: expected ${expected} (got "${value}")`);
    }
    return Number(value);
  }
  if (schema.type === "boolean") {
    const flag = parseSwitch(value);
    if (flag === undefined) throw new ConfigError(`${name}: expected true or false (got "${value}")`);
    return flag;
  }
  return value;
}

function parseSwitch(value: string): boolean | undefined {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  return undefined;
}

function checkUrl(name: string, value: string, protocols: string[]) {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Not echoed: store, Redis and SMTP URLs carry passwords, and this message goes to the log.
    throw new ConfigError(`${name}: not a valid URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name}: expected a ${protocols.join(" or ")} URL (got "${url.protocol}")`);
  }
}

function resolveKeys(config: Config, devKeys: boolean): string[] {
  const warnings: string[] = [];
  const bad = (v: string) => !v || PLACEHOLDER_KEYS.has(v) || Buffer.byteLength(v) < MIN_KEY_BYTES;
  if (config.NODE_ENV === "production") {
    for (const name of KEY_NAMES) {
      if (bad(config[name])) {
        throw new ConfigError(
          `${name}: in production it must be set to a random value of at least ${MIN_KEY_BYTES} bytes ` +
            "(not the example value); generate one with: openssl rand -base64 48",
        );
      }
    }
    return warnings;
  }
  const missing = KEY_NAMES.filter((name) => !config[name]);
  if (missing.length > 0 && devKeys) {
    const file = join(config.DATA_DIR, "secrets.json");
    mkdirSync(config.DATA_DIR, { recursive: true });
    if (!existsSync(file)) createOnce(file, Object.fromEntries(missing.map((n) => [n, newSecret(48)])));
    const kept: Record<string, string> = JSON.parse(readFileSync(file, "utf8"));
    const added = missing.filter((name) => !kept[name]);
    for (const name of missing) {
      kept[name] ??= newSecret(48);
      config[name] = kept[name];
    }
    if (added.length > 0) writeFileSync(file, JSON.stringify(kept, null, 2), { mode: 0o600 });
    warnings.push(
      `${missing.join(" and ")} not set: using a generated development key kept in ${file}. ` +
        "Set them in production.",
    );
  }
  for (const name of KEY_NAMES) {
    if (bad(config[name]) && !missing.includes(name)) {
      warnings.push(`${name} is short or an example value; production would refuse it`);
    }
  }
  return warnings;
}

/**
 * Writes the file only if it does not exist, whole or not at all: nodes started at once on one DATA_DIR
 * must all end up with the first one's keys (their tokens are checked by each other), and none may read
 * a half-written file. A complete temp file is linked into place, which fails if the name is taken.
 */
function createOnce(file: string, content: Record<string, string>) {
  const temp = `${file}.${process.pid}.${newSecret(6)}.tmp`;
  writeFileSync(temp, JSON.stringify(content, null, 2), { mode: 0o600 });
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    unlinkSync(temp);
  }
}
