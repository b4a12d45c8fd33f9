// Operator commands, run by the same binary: `parley admin grant <username|email>`,
// `parley admin revoke <username|email>`, `parley admin list` (they use the configured store directly),
// and `parley health` (the container's health check: asks the server on this host whether it is ready).

import { type Config, ConfigError } from "./config.ts";
import { openStore } from "./deps.ts";

const USAGE = "usage: parley admin grant|revoke <username|email>  |  parley admin list";

/**
 * Runs one command: what it reports goes to `out`, usage and errors to `err`. Exit codes: 0 done, 1 no
 * such user, 64 a command line it does not take (EX_USAGE), 78 a store it cannot use (EX_CONFIG: no
 * database in DATA_DIR, or one this release must upgrade first, which only the server does).
 */
export async function runCli(
  args: string[],
  config: Config,
  out: (line: string) => void,
  err: (line: string) => void = out,
): Promise<number> {
  const [scope, command, who = "", ...extra] = args;
  const named = command === "grant" || command === "revoke";
  // Checked whole before the store is opened: a command line it does not take is 64 whatever DATA_DIR holds.
  const takes = named ? who.trim() !== "" : command === "list" && args.length === 2;
  if (scope !== "admin" || !takes || extra.length > 0) {
    err(named ? `usage: parley admin ${command} <username|email>` : USAGE);
    return 64; // EX_USAGE
  }
  let store: Awaited<ReturnType<typeof openStore>>;
  try {
    store = await openStore(config);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    err(`parley: ${e.message}`);
    return 78; // EX_CONFIG
  }
  try {
    if (command === "list") {
      let after = "";
      for (;;) {
        const page = await store.users.list({ afterUsername: after, limit: 500 });
        for (const u of page) if (u.role === "admin") out(`${u.username} <${u.email}>`);
        const last = page.at(-1);
        if (page.length < 500 || !last) return 0;
        after = last.username;
      }
    }
    const login = who.trim().toLowerCase();
    const user = login.includes("@") ? await store.users.byEmail(login) : await store.users.byUsername(login);
    if (!user) {
      err(`no user ${who}`);
      return 1;
    }
    await store.users.update(user.id, {
      role: command === "grant" ? "admin" : "user",
      updated_at: Date.now(),
    });
    out(`${user.username} is ${command === "grant" ? "now an admin" : "no longer an admin"}`);
    return 0;
  } finally {
    await store.close();
  }
}

/** How long `parley health` waits for the server's answer. */
const HEALTH_TIMEOUT_MS = 3000;

/**
 * `parley health`: 0 when the server on this host answers GET /ready with 200, 1 otherwise (not ready,
 * shutting down, not answering), with one line saying which. For the image's HEALTHCHECK: distroless has
 * no curl. Reads PORT, HOST and TLS_CERT_FILE as the server does, and nothing else of its configuration.
 */
export async function runHealth(
  env: Record<string, string | undefined>,
  out: (line: string) => void,
): Promise<number> {
  const port = env.PORT || "8000";
  const host = env.HOST || "0.0.0.0";
  // A server listening on every address is asked on loopback.
  const target =
    host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  const url = `${env.TLS_CERT_FILE ? "https" : "http"}://${target}:${port}/ready`;
  try {
    const res = await fetch(url, {
      signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
      // Its own certificate, asked by address: the name in it is the public one.
      tls: { rejectUnauthorized: false },
    });
    const body = await res.text();
    out(`${url}: ${res.status} ${body}`);
    return res.status === 200 ? 0 : 1;
  } catch (err) {
    out(`${url}: no answer (${err instanceof Error ? err.message : String(err)})`);
    return 1;
  }
}
