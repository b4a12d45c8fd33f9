// The bench's Redis check (bench/lib/redis.ts): a Redis that is not there is said at once, with its cause.

import { describe, expect, it } from "bun:test";
import { checkRedis } from "../../bench/lib/redis.ts";

describe("checkRedis", () => {
  it("rejects with the address and the cause when nothing listens there", async () => {
    // Port 1 on loopback: nothing listens, the connect is refused at once.
    const err = await checkRedis("redis://127.0.0.1:1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err)).toContain("Redis at redis://127.0.0.1:1 does not answer");
    expect(String(err)).toContain("ECONNREFUSED");
    expect(String(err)).toContain("BENCH_REDIS_URL");
  });
});
