// GET /metrics: the node's metrics in Prometheus' text format, for a scraper that presents METRICS_TOKEN as
// a bearer token. Without METRICS_TOKEN the endpoint does not exist (404): metrics name routes, error
// codes and load, which the public has no business reading.

import { timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import type { Deps } from "../../deps.ts";
import { sha256 } from "../../lib/crypto.ts";
import { AppError } from "../../lib/errors.ts";
import { METRICS_CONTENT_TYPE } from "../../lib/metrics.ts";
import { bearerToken } from "../auth/guard.ts";

export function metricsController({ config, metrics }: Pick<Deps, "config" | "metrics">) {
  // Compared as hashes of equal length, in constant time.
  const expected = Buffer.from(sha256(config.METRICS_TOKEN));
  return new Elysia().get(
    "/metrics",
    ({ request }) => {
      if (!config.METRICS_TOKEN)
        throw new AppError("not_found", "metrics are off (METRICS_TOKEN is not set)");
      const token = bearerToken(request.headers.get("authorization"));
      if (!token || !timingSafeEqual(Buffer.from(sha256(token)), expected)) {
        throw new AppError("unauthorized", "metrics need the bearer token METRICS_TOKEN", {
          headers: { "WWW-Authenticate": 'Bearer realm="metrics"' },
        });
      }
      return new Response(metrics.registry.render(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
    },
    { detail: { hide: true } },
  );
}
