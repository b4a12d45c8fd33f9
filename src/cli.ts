// Operator commands, run by the same binary: `parley admin grant <username|email>`,
// `parley admin revoke <username|email>`, `parley admin list`. They use the configured store directly.

import type { Config } from "./config.ts";
import { openStore } from "./deps.ts";

export async function runCli(args: string[], config: Config, out: (line: string) => void): Promise<number> {
  const [scope, command, who] = args;
  if (scope !== "admin" || !command || !["grant", "revoke", "list"].includes(command)) {
    out("usage: parley admin grant|revoke <username|email>  |  parley admin list");
    return 64; // EX_USAGE
  }
  const store = await openStore(config);
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
    if (!who) {
      out(`usage: parley admin ${command} <username|email>`);
      return 64;
    }
    const login = who.trim().toLowerCase();
    const user = login.includes("@") ? await store.users.byEmail(login) : await store.users.byUsername(login);
    if (!user) {
      out(`no user ${who}`);
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
