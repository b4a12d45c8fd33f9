// Everything the app needs, built once from Config: the store, mail, limiters, tokens, clock, logger.
// Tests build their own Deps (temp SQLite file, ManualClock) and hand them to createApp.

import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { MemoryBroker } from "./broker/memory.ts";
import { RedisBroker } from "./broker/redis.ts";
import type { Broker } from "./broker/types.ts";
import type { Config } from "./config.ts";
import { type Clock, systemClock } from "./lib/clock.ts";
import type { Logger } from "./lib/logger.ts";
import { createTokenSigner, type TokenSigner } from "./lib/tokens.ts";
import { createMailer } from "./mail/index.ts";
import type { Mailer } from "./mail/types.ts";
import { type AuthService, createAuthService } from "./modules/auth/service.ts";
import { SessionCache } from "./modules/auth/session-cache.ts";
import { MembershipCache, REVALIDATE_ALONE_MS, REVALIDATE_MS } from "./modules/conversations/membership.ts";
import { type ConversationsService, createConversationsService } from "./modules/conversations/service.ts";
import { createMessagesService, type MessagesService } from "./modules/messages/service.ts";
import { createMetrics, type Metrics } from "./modules/metrics/service.ts";
import { createUsersService, type UsersService } from "./modules/users/service.ts";
import { createRateLimiters, type RateLimiters } from "./ratelimit/index.ts";
import { createGateway, type Gateway } from "./realtime/gateway.ts";
import { Hub } from "./realtime/hub.ts";
import { openMongoStore } from "./store/mongo/index.ts";
import { openSqliteStore } from "./store/sqlite/index.ts";
import type { Store } from "./store/types.ts";

export interface Deps {
  config: Config;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  store: Store;
  mailer: Mailer;
  limiters: RateLimiters;
  signer: TokenSigner;
  sessions: SessionCache;
  auth: AuthService;
  users: UsersService;
  broker: Broker;
  hub: Hub;
  membership: MembershipCache;
  conversations: ConversationsService;
  messages: MessagesService;
  gateway: Gateway;
}

export async function openStore(config: Config): Promise<Store> {
  if (config.MONGODB_URL) return openMongoStore(config.MONGODB_URL, config.DATABASE_NAME);
  return openSqliteStore(join(config.DATA_DIR, "parley.db"));
}

/** The access-token signer the configuration asks for (the bench signs its seeded accounts' tokens with it). */
export const signerFor = (config: Config): TokenSigner =>
  createTokenSigner({
    secret: config.SECRET_KEY,
    algorithm: config.ALGORITHM,
    ttlMinutes: config.ACCESS_TOKEN_EXPIRE_MINUTES,
  });

/** Wires the services over explicit parts; any part may be given (tests pass a ManualClock or a store). */
export async function createDeps(
  config: Config,
  logger: Logger,
  parts: { clock?: Clock; store?: Store; mailer?: Mailer; broker?: Broker } = {},
): Promise<Deps> {
  const clock = parts.clock ?? systemClock;
  const metrics = createMetrics(pkg.version);
  const opened = parts.store ?? (await openStore(config));
  const broker =
    parts.broker ??
    (config.REDIS_URL
      ? new RedisBroker(config.REDIS_URL, logger, { prefix: config.REDIS_PREFIX })
      : new MemoryBroker());
  const membership = new MembershipCache(opened, clock, broker.shared ? REVALIDATE_MS : REVALIDATE_ALONE_MS);
  // Every service writes through this one, so membership changes reach the cache at once.
  const store = membership.watch(opened);
  const mailer = parts.mailer ?? createMailer(config);
  const limiters = createRateLimiters(config, clock, logger, metrics);
  const signer = signerFor(config);
  const sessions = new SessionCache(store, clock);
  const auth = createAuthService({ config, store, clock, signer, mailer, sessions, logger });
  const users = createUsersService({ store, clock });
  const hub = new Hub();
  const conversations = createConversationsService({ store, clock, hub });
  const messages = createMessagesService({ config, store, clock, hub, membership, metrics });
  const services = {
    config,
    clock,
    logger,
    metrics,
    store,
    mailer,
    limiters,
    signer,
    sessions,
    auth,
    users,
    broker,
    hub,
    membership,
    conversations,
    messages,
  };
  // The gateway needs the services and is itself part of Deps (the app mounts it, shutdown closes it).
  return { ...services, gateway: createGateway(services) };
}

/** Closes what createDeps opened, after in-flight mail has gone out. */
export async function closeDeps(deps: Deps) {
  await deps.gateway.close();
  await deps.auth.settled();
  await Promise.allSettled([
    deps.limiters.close(),
    deps.mailer.close(),
    deps.broker.close(),
    deps.store.close(),
  ]);
  deps.metrics.close();
}
