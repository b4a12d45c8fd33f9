// Operator commands, run by the same binary: `parley admin grant <username|email>`,
// `parley admin revoke <username|email>`, `parley admin list`. They use the configured store directly.

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
