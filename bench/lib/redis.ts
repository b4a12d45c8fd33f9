// The Redis the multi-process scenarios join their nodes through (BENCH_REDIS_URL): is it there, and which
// local process is it (for its CPU).

import { readFileSync } from "node:fs";
import { Redis } from "ioredis";

export const benchRedisUrl = () => process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379";

/** Fails at once, with the address, when Redis does not answer. */
export async function checkRedis(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`Redis at ${url} does not answer (set BENCH_REDIS_URL): ${err}`);
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
