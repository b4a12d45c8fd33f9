// createApp(deps): mounts every module on one Elysia app. index.ts listens with it; tests call
// app.handle(new Request(...)) or listen on port 0.

import { cors } from "@elysiajs/cors";
import { Elysia } from "elysia";
import pkg from "../package.json" with { type: "json" };
import { splitList } from "./config.ts";
import type { Deps } from "./deps.ts";
import { announcementsController } from "./modules/announcements/index.ts";
import { authController } from "./modules/auth/index.ts";
import { conversationsController } from "./modules/conversations/index.ts";
import { healthController } from "./modules/health/index.ts";
import { messagesController } from "./modules/messages/index.ts";
import { metricsController } from "./modules/metrics/index.ts";
import { usersController } from "./modules/users/index.ts";
import { httpPlugin } from "./plugins/http.ts";
import { openapiPlugin } from "./plugins/openapi.ts";

export function createApp(deps: Deps) {
  const origins = splitList(deps.config.CORS_ORIGINS);
  return new Elysia({
    // Responses are still checked against their schemas (compiled), but not run through TypeBox's
    // transform encoder: Elysia's t.Integer is a transform, so every response with a number in it paid for
    // an interpreted Encode that changes nothing here (history pages: +25% per second, bench rest scenario).
    encodeSchema: false,
    serve: {
      maxRequestBodySize: Math.max(deps.config.MAX_FILE_SIZE, deps.config.MAX_JSON_BODY_BYTES) + 64 * 1024,
    },
    websocket: {
      maxPayloadLength: deps.config.WS_MAX_PAYLOAD,
      // The gateway closes silent sockets itself (4003); Bun's timer is only the backstop.
      idleTimeout: Math.min(960, deps.config.WS_CONNECTION_TIMEOUT + 30),
      sendPings: false,
      perMessageDeflate: false,
      // Slow consumers are closed with 4001 at WS_BACKPRESSURE_LIMIT; far above it Bun closes them itself
      // rather than drop frames.
      backpressureLimit: Math.max(64 * 1024 * 1024, deps.config.WS_BACKPRESSURE_LIMIT * 4),
      closeOnBackpressureLimit: true,
    },
  })
    .use(httpPlugin(deps))
    .use(
      cors({
        origin: origins.includes("*") ? true : origins.length > 0 ? origins : false,
        credentials: !origins.includes("*"),
        allowedHeaders: ["Authorization", "Content-Type", "X-Request-Id"],
        exposeHeaders: [
          "Retry-After",
          "RateLimit-Limit",
          "RateLimit-Remaining",
          "RateLimit-Reset",
          "X-Request-Id",
        ],
        maxAge: 600,
      }),
    )
    .use(openapiPlugin(pkg.version))
    .use(healthController(deps))
    .use(metricsController(deps))
    .use(authController(deps))
    .use(usersController(deps))
    .use(conversationsController(deps))
    .use(messagesController(deps))
    .use(announcementsController(deps))
    .use(deps.gateway.plugin);
}

export type App = ReturnType<typeof createApp>;
