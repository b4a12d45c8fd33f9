// The Redis the multi-process scenarios join their nodes through (BENCH_REDIS_URL): is it there, and which
// local process is it (for its CPU).

import { readFileSync } from "node:fs";
import { Redis } from "ioredis";

export const benchRedisUrl = () => process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379";

/** Fails at once, with the address, when Redis does not answer. */
export async function checkRedis(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null });
  // The cause (ECONNREFUSED, ENOTFOUND, a timeout) comes as an "error" event; connect() only rejects with
  // "Connection is closed". Heard here, it is not printed by ioredis as an unhandled event's stack.
  let cause: unknown;
  redis.on("error", (err) => {
    cause ??= err;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    const why = cause instanceof Error ? cause.message : String(cause ?? err);
    throw new Error(`Redis at ${url} does not answer (${why}); start it, or set BENCH_REDIS_URL`);
  } finally {
    redis.disconnect();
  }
}

/** The local redis-server's pid, for its CPU; undefined when Redis is elsewhere or no process matches. */
export function redisServerPid(url: string): number | undefined {
  const { hostname, port } = new URL(url);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(hostname)) return undefined;
  try {
    const pids = Bun.spawnSync(["pgrep", "-x", "redis-server"])
      .stdout.toString()
      .split("\n")
      .filter(Boolean)
      .map(Number);
    if (pids.length <= 1) return pids[0];
    return pids.find((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`:${port || 6379}`));
  } catch {
    return undefined;
  }
}
