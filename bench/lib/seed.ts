// Accounts for a bench run, written straight into a running Parley's SQLite file: the user, session and
// refresh-token rows a signup writes and the tokens it answers with, signed with the server's own secret.
// What is skipped is argon2id per user (one hash serves them all): at 5,000 users that was most of a full
// run. Signup and sign-in themselves are measured by the rest scenario; sockets authenticate with these
// tokens exactly as after a signup (JWT, then the session row).

import { loadConfig } from "../../src/config.ts";
import { openStore, signerFor } from "../../src/deps.ts";
import { systemClock } from "../../src/lib/clock.ts";
import { hashPassword } from "../../src/lib/crypto.ts";
import { newId } from "../../src/lib/ids.ts";
import type { TokenResponse } from "../../src/modules/auth/model.ts";
import { openSession } from "../../src/modules/auth/service.ts";

export const BENCH_PASSWORD = "correct horse battery staple";

/**
 * `count` accounts named after `tag` (unique per run), each with one session. `env` is the server's
 * environment: the same DATA_DIR, secret and token settings make the same database and valid tokens.
 */
export async function seedAccounts(
  env: Record<string, string | undefined>,
  count: number,
  tag: string,
): Promise<TokenResponse[]> {
  const { config } = loadConfig(env);
  if (config.MONGODB_URL) throw new Error("seedAccounts: the bench seeds the embedded SQLite store only");
  const store = await openStore(config);
  const deps = { config, store, clock: systemClock, signer: signerFor(config) };
  const client = { ip: "127.0.0.1", userAgent: "parley-bench" };
  try {
    const passwordHash = await hashPassword(BENCH_PASSWORD, config);
    const accounts: TokenResponse[] = [];
    for (let i = 0; i < count; i++) {
      const now = systemClock.now();
      const username = `bench_${tag}_${i}`;
      const user = {
        id: newId(now),
        email: `${username}@example.com`,
        username,
        display_name: `Bench ${i}`,
        password_hash: passwordHash,
        email_verified_at: null,
        status: "offline" as const,
        chosen_status: "online" as const,
        role: "user" as const,
        last_seen: null,
        created_at: now,
        updated_at: now,
      };
      await store.users.create(user);
      accounts.push(await openSession(deps, user, client, "password", "bench"));
    }
    return accounts;
  } finally {
    await store.close();
  }
}
