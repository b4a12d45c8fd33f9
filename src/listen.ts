// The server's listener: PORT on HOST, shared with other processes only when asked, with TLS when given.

import type { createApp } from "./app.ts";
import { type Config, ConfigError } from "./config.ts";

/**
 * Listens on PORT. Another process on it is refused with a message, not a stack: Elysia would share the
 * port (SO_REUSEPORT) by default, and two Parley processes with separate data and no common Redis would
 * each get some of the clients, unseen by the other. Sharing it is REUSE_PORT, which needs REDIS_URL.
 */
export function listen(app: ReturnType<typeof createApp>, config: Config) {
  try {
    // TLS_CERT_FILE and TLS_KEY_FILE were read at boot (config.ts): Bun reads them again, whole, here.
    const tls = config.TLS_CERT_FILE
      ? { tls: { cert: Bun.file(config.TLS_CERT_FILE), key: Bun.file(config.TLS_KEY_FILE) } }
      : {};
    return app.listen({ port: config.PORT, hostname: config.HOST, reusePort: config.REUSE_PORT, ...tls });
  } catch (err) {
    if ((err as { code?: unknown }).code !== "EADDRINUSE") throw err;
    throw new ConfigError(
      `PORT: ${config.HOST}:${config.PORT} is in use ` +
        (config.REUSE_PORT
          ? "by a process that does not share it: every process on a shared port needs REUSE_PORT=true"
          : "by another process. Stop it or choose another PORT; Parley processes meant to share it " +
            "(nodes of one deployment) need REUSE_PORT=true and one REDIS_URL on each"),
    );
  }
}
