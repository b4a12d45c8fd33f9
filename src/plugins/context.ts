// Per-request context every controller may read: request id, client IP and start time.
// Named, so mounting it in several controllers runs it once per request.

import { Elysia } from "elysia";
import type { Config } from "../config.ts";
import { newId } from "../lib/ids.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** What onRequest leaves on the context: every request has it, the ones no route takes too. */
interface Started {
  requestId?: string;
  startedAt?: number;
}

export function requestContext(config: Pick<Config, "TRUST_PROXY">) {
  return (
    new Elysia({ name: "parley.context" })
      // Before routing, so that answers no route gives (404, early 413/415) carry the id too and the access
      // log and metrics see their start.
      .onRequest((ctx) => {
        const given = ctx.request.headers.get("x-request-id");
        const started = ctx as unknown as Started;
        started.requestId = given && REQUEST_ID.test(given) ? given : newId();
        started.startedAt = performance.now();
        ctx.set.headers["x-request-id"] = started.requestId;
      })
      .derive({ as: "global" }, (ctx) => {
        const { request, server, headers } = ctx;
        const started = ctx as unknown as Started;
        // X-Forwarded-For is only believed behind a proxy the operator vouches for.
        const forwarded = config.TRUST_PROXY ? headers["x-forwarded-for"]?.split(",")[0]?.trim() : undefined;
        return {
          requestId: started.requestId ?? newId(),
          clientIp: forwarded || server?.requestIP(request)?.address || "unknown",
          startedAt: started.startedAt ?? performance.now(),
        };
      })
  );
}
