// The one table of named rate limiters (Signal-Server style): each has a bucket size, a refill rate, and
// whether it lets requests through (fails open) or refuses them (fails closed) when its store is unreachable.

import type { Config } from "../config.ts";

export type LimiterName = "api" | "signup" | "signin" | "refresh" | "magic_link_ip" | "magic_link_email";

export const LIMITER_NAMES: readonly LimiterName[] = [
  "api",
  "signup",
  "signin",
  "refresh",
  "magic_link_ip",
  "magic_link_email",
];

export interface LimiterSpec {
  name: LimiterName;
  /** Bucket size: how many requests a quiet key may make back to back. */
  capacity: number;
  /** Tokens added back per second, continuously (fractions allowed). */
  refillPerSecond: number;
  /** When the store is unreachable: true lets the request through, false refuses it with 503. */
  failOpen: boolean;
}

/** Only the variables the table reads, so tests can build one without loading the whole environment. */
export type LimitConfig = Pick<
  Config,
  | "RATE_LIMIT_PER_MINUTE"
  | "RATE_LIMIT_BURST"
  | "AUTH_RATE_LIMIT_PER_MINUTE"
  | "AUTH_RATE_LIMIT_BURST"
  | "MAGIC_LINK_PER_HOUR"
>;

export function limiterTable(config: LimitConfig): Record<LimiterName, LimiterSpec> {
  // Auth endpoints guard credentials, so an outage must not turn into unlimited password guessing.
  const auth = (name: LimiterName): LimiterSpec => ({
    name,
    capacity: config.AUTH_RATE_LIMIT_PER_MINUTE + config.AUTH_RATE_LIMIT_BURST,
    refillPerSecond: config.AUTH_RATE_LIMIT_PER_MINUTE / 60,
    failOpen: false,
  });
  return {
    // Message throughput: a Redis outage should slow nobody down, so it fails open.
    api: {
      name: "api",
      capacity: config.RATE_LIMIT_PER_MINUTE + config.RATE_LIMIT_BURST,
      refillPerSecond: config.RATE_LIMIT_PER_MINUTE / 60,
      failOpen: true,
    },
    signup: auth("signup"),
    signin: auth("signin"),
    refresh: auth("refresh"),
    magic_link_ip: auth("magic_link_ip"),
    // Each magic link is an email we send on someone's behalf: an outage must not make us a spam relay.
    magic_link_email: {
      name: "magic_link_email",
      capacity: config.MAGIC_LINK_PER_HOUR,
      refillPerSecond: config.MAGIC_LINK_PER_HOUR / 3600,
      failOpen: false,
    },
  };
}

/** Throws, naming the limiter and the bad field, if a table could not work (checked when limiters are built). */
export function checkTable(table: Record<LimiterName, LimiterSpec>): void {
  for (const name of LIMITER_NAMES) {
    const spec = table[name];
    if (!spec) throw new Error(`rate limiter table: missing limiter "${name}"`);
    if (spec.name !== name) throw new Error(`rate limiter table: "${name}" has name "${spec.name}"`);
    if (!Number.isInteger(spec.capacity) || spec.capacity < 1) {
      throw new Error(`rate limiter "${name}": capacity must be an integer >= 1 (got ${spec.capacity})`);
    }
    if (!Number.isFinite(spec.refillPerSecond) || spec.refillPerSecond <= 0) {
      throw new Error(`rate limiter "${name}": refillPerSecond must be > 0 (got ${spec.refillPerSecond})`);
    }
  }
}
