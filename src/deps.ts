// Everything the app needs, built once from Config: the store, mail, limiters, tokens, clock, logger.
// Tests build their own Deps (temp SQLite file, ManualClock) and hand them to createApp.

import { existsSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { MemoryBroker } from "./broker/memory.ts";
import { RedisBroker } from "./broker/redis.ts";
import type { Broker } from "./broker/types.ts";
import { type Config, ConfigError } from "./config.ts";
import { type Clock, systemClock } from "./lib/clock.ts";
import { errorText } from "./lib/errors.ts";
import type { Logger } from "./lib/logger.ts";
import { createTokenSigner, type TokenSigner } from "./lib/tokens.ts";
import { within } from "./lib/within.ts";
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
import { brokerLockFile, type DataDirMode, lockDataDir } from "./store/sqlite/data-dir-lock.ts";
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

/**
 * The configured store. A server takes DATA_DIR's lock as it opens the SQLite file (`lock`: alone or
 * shared with processes on one Redis) and holds it until the store closes; the admin CLI takes none.
 */
export async function openStore(
  config: Config,
  lock?: DataDirMode,
  logger?: Pick<Logger, "info" | "warn">,
): Promise<Store> {
  if (config.MONGODB_URL) {
    // Loaded only here: the driver is a sizeable part of a boot on the embedded store, which never uses it.
    const { openMongoStore } = await import("./store/mongo/index.ts");
    return openMongoStore(config.MONGODB_URL, config.DATABASE_NAME, {
      requireTransactions: config.NODE_ENV === "production",
      onMode: (mode) =>
        mode === "transactions"
          ? logger?.info({ mongodb: mode }, "MongoDB: appends in transactions")
          : logger?.warn(
              { mongodb: mode },
              "MongoDB: a standalone server has no transactions; appends may land out of seq order " +
                "and a racing resend may take a seq (development only; production refuses it)",
            ),
    });
  }
  const path = join(config.DATA_DIR, "parley.db");
  // The admin CLI takes no lock (a server may be running): it neither makes the file nor upgrades it,
  // which is the server's to do, once, under its lock.
  if (!lock) {
    if (!existsSync(path))
      throw new ConfigError(`DATA_DIR: no database at ${path} (the server makes it when it first starts)`);
    return openSqliteStore(path, { migrate: false });
  }
  const held = lockDataDir(config.DATA_DIR, lock, brokerLockFile(config.REDIS_URL, config.REDIS_PREFIX));
  try {
    const store = openSqliteStore(path);
    return {
      ...store,
      async close() {
        await store.close();
        held.release();
      },
    };
  } catch (err) {
    held.release();
    throw err;
  }
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
  const broker =
    parts.broker ??
    (config.REDIS_URL
      ? new RedisBroker(config.REDIS_URL, logger, { prefix: config.REDIS_PREFIX })
      : new MemoryBroker());
  let opened: Store;
  try {
    opened = parts.store ?? (await openStore(config, broker.shared ? "shared" : "alone", logger));
  } catch (err) {
    if (!parts.broker) await broker.close();
    throw err;
  }
  // A node trusts its membership answers for a minute only when it knows that it makes every change to
  // the store itself: it holds DATA_DIR alone (data-dir-lock.ts). On MongoDB, or over a store it was
  // given, it cannot know, and re-reads them after a second as nodes with a shared broker do.
  const alone = !broker.shared && !parts.store && !config.MONGODB_URL;
  const membership = new MembershipCache(opened, clock, alone ? REVALIDATE_ALONE_MS : REVALIDATE_MS);
  // Every service writes through this one, so membership changes reach the cache at once.
  const store = membership.watch(opened);
  const mailer = parts.mailer ?? createMailer(config, logger);
  const limiters = createRateLimiters(config, clock, logger, metrics);
  const signer = signerFor(config);
  const sessions = new SessionCache(store, clock);
  const auth = createAuthService({ config, store, clock, signer, mailer, sessions, logger });
  const users = createUsersService({ store, clock });
  const hub = new Hub();
  const conversations = createConversationsService({ config, store, clock, hub });
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

/** How long shutdown waits for mail in flight (an SMTP server may hang far longer). */
export const MAIL_DRAIN_MS = 3000;

/** Closes what createDeps opened, after in-flight mail has gone out or MAIL_DRAIN_MS has passed. */
export async function closeDeps(deps: Deps) {
  await deps.gateway.close();
  const mailSent = deps.auth
    .settled()
    .then(() => deps.mailer.close())
    .catch((err: unknown) =>
      deps.logger.warn({ err: errorText(err) }, "shutdown: closing the mailer failed"),
    );
  await within(mailSent, MAIL_DRAIN_MS, () =>
    deps.logger.warn({ after_ms: MAIL_DRAIN_MS }, "shutdown: mail still being sent is given up"),
  );
  await Promise.allSettled([deps.limiters.close(), deps.broker.close(), deps.store.close()]);
  deps.metrics.close();
}
