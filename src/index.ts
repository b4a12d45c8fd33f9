// Entry: config -> deps -> app -> listen; graceful shutdown on SIGTERM/SIGINT.

import { constants } from "node:os";
import { createApp } from "./app.ts";
import { runCli, runHealth } from "./cli.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { closeDeps, createDeps } from "./deps.ts";
import { errorText } from "./lib/errors.ts";
import { createLogger } from "./lib/logger.ts";
import { within } from "./lib/within.ts";
import { listen } from "./listen.ts";

/** How long shutdown lets HTTP requests in flight finish before it closes their connections. */
const REQUESTS_DRAIN_MS = 3000;

/** Codes of a DATA_DIR or database file the server cannot use: its own, SQLite's and the system's. */
const UNUSABLE =
  /^(SQLITE_(CORRUPT|NOTADB|CANTOPEN|BUSY|LOCKED|READONLY|IOERR|FULL|PERM|AUTH)|E(ACCES|ROFS|NOSPC|ISDIR|NOTDIR|PERM|IO))/;

/**
 * A configuration the server cannot run with (a bad variable, a DATA_DIR taken, a database file it
 * cannot open: corrupt, not a database, locked by another program, read-only, on a full disk) stops boot
 * with EX_CONFIG and one line, not a stack.
 */
async function orRefuse<T>(boot: () => T | Promise<T>, dataDir?: string): Promise<T> {
  try {
    return await boot();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`parley: configuration error: ${err.message}`);
      process.exit(78); // EX_CONFIG
    }
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === "string" && UNUSABLE.test(code)) {
      const where = dataDir ? `DATA_DIR ${dataDir}` : "DATA_DIR";
      console.error(`parley: configuration error: ${where} cannot be used: ${code}: ${errorText(err)}`);
      process.exit(78);
    }
    throw err;
  }
}

async function main() {
  const admin = process.argv[2] === "admin";
  if (process.argv[2] === "health" && process.argv.length === 3)
    process.exit(await runHealth(process.env, console.log));
  // Anything else on the command line is a mistake, not a server to start: said before DATA_DIR is touched.
  if (process.argv.length > 2 && !admin) {
    console.error(
      "usage: parley  (the server)  |  parley admin grant|revoke <username|email>  |  parley admin list  |  parley health",
    );
    process.exit(64);
  }
  // The admin CLI signs and serves nothing: it needs no keys, TLS or PUBLIC_URL, and generates no
  // development keys (into a DATA_DIR that may be mistyped).
  const loaded = await orRefuse(() => loadConfig(process.env, { serving: !admin }), process.env.DATA_DIR);
  const { config, warnings } = loaded;
  if (admin) {
    const run = () => runCli(process.argv.slice(2), config, console.log, console.error);
    process.exit(await orRefuse(run, config.DATA_DIR));
  }
  const logger = createLogger(config.LOG_LEVEL);
  for (const w of warnings) logger.warn(w);

  const deps = await orRefuse(() => createDeps(config, logger), config.DATA_DIR);
  // Alone, this node had every socket: after a crash (no shutdown to write them offline) users it had
  // online would stay so. With other nodes their sockets still count (Redis), so nothing is reset.
  if (!deps.broker.shared) {
    const reset = await orRefuse(() => deps.store.users.allOffline(deps.clock.now()), config.DATA_DIR);
    if (reset > 0) logger.info({ users: reset }, "presence: users left online by the last run set offline");
  }
  const app = await orRefuse(() => listen(createApp(deps), config));
  logger.info(
    {
      port: app.server?.port,
      scheme: config.TLS_CERT_FILE ? "https" : "http",
      host: config.HOST,
      store: deps.store.kind,
      data_dir: config.DATA_DIR,
      // Which nodes this one fans out with: only this process, or every node on the same Redis.
      broker: deps.broker.shared ? "redis" : "memory",
      node_id: deps.broker.nodeId,
    },
    "parley listening",
  );

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    // A second signal is an operator (or orchestrator) who will not wait: go now, as the signal would have.
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting without waiting for the shutdown");
      process.exit(128 + (constants.signals[signal] ?? 15));
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    // Sockets first, with 4000 (reconnect and resume), so clients move on before the listener closes.
    await deps.gateway.close();
    // Requests in flight may finish, for a while: a client that sends its body a byte at a time, or a
    // request that hangs, must not hold the process until the orchestrator kills it.
    await within(
      app.stop().then(() => {}),
      REQUESTS_DRAIN_MS,
      async () => {
        logger.warn({ after_ms: REQUESTS_DRAIN_MS }, "shutdown: closing connections still busy");
        await app.server?.stop(true);
      },
    );
    await closeDeps(deps);
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

await main();
