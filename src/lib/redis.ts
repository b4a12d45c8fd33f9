// Redis clients that log an outage once instead of at every reconnect, and close cleanly in any state.
// Rate limits (ratelimit/redis.ts) and the scale-out broker (broker/redis.ts) each own theirs.

import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.ts";

/**
 * The longest wait between two tries to reconnect: the broker's settle window (SETTLE_MS, 3 s) counts on
 * every node being back within it. ioredis 6's own backoff doubles up to 5 s (and 200 ms of jitter), so a
 * Redis back after a few seconds would be tried again only seconds later.
 */
const RECONNECT_MAX_MS = 2000;
const JITTER_MS = 200;

/** 50 ms, doubling, with some jitter so that nodes cut off together do not all try at once; 2 s at most. */
function retryStrategy(times: number): number {
  const backoff = Math.min(50 * 2 ** (times - 1), RECONNECT_MAX_MS - JITTER_MS);
  return backoff + Math.floor(Math.random() * JITTER_MS);
}

/** `what` names the client in the logs ("rate limit redis"); the URL (it may hold a password) never is. */
export function openRedis(url: string, logger: Logger, what: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, { lazyConnect: false, retryStrategy, ...options });
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
