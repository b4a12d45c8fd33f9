// Per-request context every controller may read: request id, client IP and start time.
// Named, so mounting it in several controllers runs it once per request.

import { Elysia } from "elysia";
import type { Config } from "../config.ts";
import { newId } from "../lib/ids.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function requestContext(config: Pick<Config, "TRUST_PROXY">) {
  return new Elysia({ name: "parley.context" }).derive(
    { as: "global" },
    ({ request, server, headers, set }) => {
      // X-Forwarded-For is only believed behind a proxy the operator vouches for.
      const forwarded = config.TRUST_PROXY ? headers["x-forwarded-for"]?.split(",")[0]?.trim() : undefined;
      const given = headers["x-request-id"];
      const requestId = given && REQUEST_ID.test(given) ? given : newId();
      set.headers["x-request-id"] = requestId;
      return {
        requestId,
        clientIp: forwarded || server?.requestIP(request)?.address || "unknown",
        startedAt: performance.now(),
      };
    },
  );
}
