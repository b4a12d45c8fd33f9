// The server's listener: PORT on HOST, shared with other processes only when asked, with TLS when given.

import type { createApp } from "./app.ts";
import { type Config, ConfigError } from "./config.ts";

/** What the listener says of a HOST it cannot bind (Bun's codes differ with the kind of mistake). */
const NO_SUCH_HOST = /^(EADDRNOTAVAIL|ENOTFOUND|EINVAL|ENOENT|EAI_[A-Z]+)$/;

/**
 * Listens on PORT. Another process on it is refused with a message, not a stack: Elysia would share the
 * port (SO_REUSEPORT) by default, and two Parley processes with separate data and no common Redis would
 * each get some of the clients, unseen by the other. Sharing it is REUSE_PORT, which needs REDIS_URL.
 * A HOST or PORT it may not or cannot bind is refused the same way, naming the variable.
 */
export function listen(app: ReturnType<typeof createApp>, config: Config) {
  try {
    // TLS_CERT_FILE and TLS_KEY_FILE were read at boot (config.ts): Bun reads them again, whole, here.
    const tls = config.TLS_CERT_FILE
      ? { tls: { cert: Bun.file(config.TLS_CERT_FILE), key: Bun.file(config.TLS_KEY_FILE) } }
      : {};
    return app.listen({ port: config.PORT, hostname: config.HOST, reusePort: config.REUSE_PORT, ...tls });
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    // A HOST that names no address of this machine (a typo, an address of another host, a name that does
    // not resolve): the system's error names neither the variable nor the value.
    if (typeof code === "string" && NO_SUCH_HOST.test(code)) {
      throw new ConfigError(
        `HOST: cannot listen on ${JSON.stringify(config.HOST)} (${code}): expected an address of this ` +
          "machine or a name that resolves to one (0.0.0.0 or :: for every address)",
      );
    }
    if (code === "EACCES") {
      throw new ConfigError(
        `PORT: not allowed to listen on port ${config.PORT} (EACCES): on most systems a port below 1024 ` +
          "needs privileges this process does not have (the image runs as a non-root user); use 1024 or more",
      );
    }
    if (code !== "EADDRINUSE") throw err;
    throw new ConfigError(
      `PORT: ${config.HOST}:${config.PORT} is in use ` +
        (config.REUSE_PORT
          ? "by a process that does not share it: every process on a shared port needs REUSE_PORT=true"
          : "by another process. Stop it or choose another PORT; Parley processes meant to share it " +
            "(nodes of one deployment) need REUSE_PORT=true and one REDIS_URL on each"),
    );
  }
}
