// Redis clients that log an outage once instead of at every reconnect, and close cleanly in any state.
// Rate limits (ratelimit/redis.ts) and the scale-out broker (broker/redis.ts) each own theirs.

import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.ts";

/** `what` names the client in the logs ("rate limit redis"); the URL (it may hold a password) never is. */
export function openRedis(url: string, logger: Logger, what: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, { lazyConnect: false, ...options });
  // Without a listener ioredis prints every reconnect failure; log the first of each outage only.
  let down = false;
  client.on("error", (err: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err: err.message }, `${what}: connection error; will keep reconnecting`);
  });
  client.on("ready", () => {
    if (down) logger.info(`${what}: connected again`);
    down = false;
  });
  return client;
}

export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === "end") return;
  if (client.status !== "ready") {
    // QUIT cannot be sent without a connection; disconnect also stops the reconnect timer.
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
