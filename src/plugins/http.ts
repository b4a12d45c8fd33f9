// Cross-cutting HTTP concerns for every route: request id, client IP, one access-log line, security
// headers, the JSON body limit, per-IP rate limit of anonymous calls, and the one error body shape.

import type { Server } from "bun";
import { Elysia } from "elysia";
import type { Deps } from "../deps.ts";
import { AppError, type ErrorCode, errorBody, storageUnavailable } from "../lib/errors.ts";
import { safePath } from "../lib/logger.ts";
import {
  addressKey,
  clientAddress,
  countedCalls,
  overHttps,
  requestContext,
  type Started,
} from "./context.ts";

const SECURITY_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Content-Security-Policy": "frame-ancestors 'none'",
  "Cross-Origin-Resource-Policy": "same-site",
};

/**
 * The field of a validation error that came without a path. Elysia checks a query value it converts to a
 * number on its own ("property") and does not say which one it was: it is the query parameter holding
 * that value when one alone does, else "query". Any other part without a path is named as a whole.
 */
function unnamedField(part: string, value: unknown, url: string): string {
  if (part !== "property" && part !== "query") return part === "params" || part === "headers" ? part : "body";
  const params = [...new URL(url).searchParams];
  const one = (holding: [string, string][]) => (holding.length === 1 && holding[0] ? holding[0][0] : null);
  // As sent, else as converted: "-0", " " and "1e3" reach the check as 0, 0 and 1000.
  return (
    one(params.filter(([, v]) => v === String(value))) ??
    one(params.filter(([, v]) => typeof value === "number" && Number(v) === value)) ??
    "query"
  );
}

/** The query parameters the API reads as whole numbers (every route's `limit`, the messages' `before` and `after`). */
const WHOLE_NUMBERS = ["limit", "before", "after"];

/**
 * A whole-number query parameter written otherwise than in digits, which validation takes once converted
 * ("0x10" as 16, "1e1" as 10, " 5" as 5): named, to be refused as any bad value is.
 */
function looselyWritten(url: string): string | null {
  const start = url.indexOf("?");
  if (start < 0) return null;
  const params = new URLSearchParams(url.slice(start + 1));
  for (const name of WHOLE_NUMBERS) {
    const value = params.get(name);
    if (value !== null && !/^[0-9]+$/.test(value)) return name;
  }
  return null;
}

/** Browsers that once reached Parley over HTTPS refuse plain HTTP to it for a year (when HTTPS is required). */
const HSTS = { "Strict-Transport-Security": "max-age=31536000" };
/** The probes a load balancer or scraper inside the network makes over plain HTTP, answered whatever the scheme. */
const PROBES = new Set(["/health", "/ready", "/metrics"]);

/** Methods never parsed for a body; every other one is checked, DELETE and OPTIONS included. */
const WITHOUT_BODY = new Set(["GET", "HEAD"]);
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The calls the limiter of API calls counts: those of the REST API, not probes, docs or sockets. */
const isApi = (request: Request) => new URL(request.url).pathname.startsWith("/api/");

/** The top-level fields of each request's JSON body as sent, before validation drops unknown ones. */
const sentFields = new WeakMap<Request, string[]>();

export function httpPlugin(deps: Deps) {
  const { config, logger, limiters, metrics } = deps;
  /** One API call the limiter of calls has not seen yet, counted per address (see countedCalls). */
  async function countOnce(
    request: Request,
    server: Pick<Server<unknown>, "requestIP"> | null | undefined,
    headers: Record<string, unknown>,
  ) {
    if (countedCalls.has(request) || !isApi(request)) return;
    countedCalls.add(request);
    const ip = clientAddress(request, server, config.TRUST_PROXY);
    Object.assign(headers, await limiters.check("api", addressKey(ip)));
  }

  return (
    new Elysia({ name: "parley.http" })
      .use(requestContext(config))
      .onRequest(async ({ request, set, server }) => {
        Object.assign(set.headers, SECURITY_HEADERS);
        // Before anything is read of it: a token or password that came in clear is not looked at. Refused
        // rather than redirected, so that a client sending secrets over HTTP is told so, not quietly sent on.
        if (config.REQUIRE_HTTPS) {
          if (overHttps(request, config)) Object.assign(set.headers, HSTS);
          else if (!PROBES.has(new URL(request.url).pathname))
            throw new AppError("https_required", "this server takes HTTPS (and WSS) only");
        }
        // Calls without a token are limited per address here, before anything else is done for them: a
        // 404, a refused body or a failed validation counts as much as an answer. Calls with one are the
        // auth guard's: per user when the token is good, per address when it is not; those no guard reads
        // are counted per address before they are handled or answered (countOnce, below).
        if (!request.headers.has("authorization") && isApi(request)) {
          countedCalls.add(request);
          const ip = clientAddress(request, server, config.TRUST_PROXY);
          Object.assign(set.headers, await limiters.check("api", addressKey(ip)));
        }
        if (WITHOUT_BODY.has(request.method)) return;
        // Cheap early refusals; the parser below enforces the limit for bodies without a length too.
        if (Number(request.headers.get("content-length") ?? 0) > config.MAX_JSON_BODY_BYTES) {
          throw new AppError("payload_too_large", `body over ${config.MAX_JSON_BODY_BYTES} bytes`);
        }
        const type = request.headers.get("content-type");
        if (type && !type.startsWith("application/json")) {
          throw new AppError("unsupported_media_type", "send application/json");
        }
      })
      // Routes with a body name the JSON parser (`parse: "json"`, which puts the body's schema in the OpenAPI
      // document); this one runs first and answers for every JSON body and every missing one, so that parser
      // never sees a request. A missing body is null: the auth guard answers before validation, as for GET.
      .onParse({ as: "global" }, async ({ request, contentType }) => {
        if (contentType && !contentType.startsWith("application/json")) return;
        const bytes = await readBody(request, config.MAX_JSON_BODY_BYTES);
        if (bytes.byteLength === 0) return null;
        if (!contentType) throw new AppError("unsupported_media_type", "send application/json");
        let text: string;
        try {
          text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          throw new AppError("validation_failed", "body: not valid UTF-8", { details: { field: "body" } });
        }
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new AppError("bad_request", "malformed JSON body");
        }
        // Every body the API takes is an object. Elysia would read any other value as {} (and a PUT of
        // "hello" would succeed as a PUT of nothing), so it is refused here.
        if (typeof body !== "object" || body === null || Array.isArray(body))
          throw new AppError("validation_failed", "body: must be a JSON object", {
            details: { field: "body" },
          });
        sentFields.set(request, Object.keys(body));
        return body;
      })
      // Validation drops the fields a route's schema does not name (Elysia's normalisation), so a client
      // that sends {"email": …} to a route that does not change it would be told 200 and change nothing.
      // After the auth guard and validation, a field the client sent that the body no longer has is refused.
      .onBeforeHandle({ as: "global" }, async ({ request, body, server, set }) => {
        await countOnce(request, server, set.headers);
        const loose = looselyWritten(request.url);
        if (loose)
          throw new AppError("validation_failed", `${loose}: a whole number, in digits`, {
            details: { field: loose },
          });
        const sent = sentFields.get(request);
        if (!sent || typeof body !== "object" || body === null) return;
        const unknown = sent.find((field) => !Object.hasOwn(body, field));
        if (unknown !== undefined) {
          const field = unknown.slice(0, 64);
          throw new AppError("validation_failed", `${field}: not a field of this request`, {
            details: { field },
          });
        }
      })
      .onError({ as: "global" }, async ({ code, error, set, request, server }) => {
        Object.assign(set.headers, SECURITY_HEADERS);
        // set.status too, which the access log and the metrics read after the answer is out.
        const errorResponse = (
          code: ErrorCode,
          status: number,
          message: string,
          extra?: Record<string, unknown>,
        ) => {
          set.status = status;
          return Response.json(errorBody(code, message, extra), { status });
        };
        // An answer given before any limiter saw the call (a 404, a refused body, with a token no guard
        // read) is counted too: over the limit, it is that refusal instead.
        const refused = await countOnce(request, server, set.headers).then(
          () => null,
          (err: unknown) => (err instanceof AppError ? err : null),
        );
        // Errors thrown by the body parser (size, malformed JSON) arrive wrapped in Elysia's ParseError.
        const known =
          refused ??
          (error instanceof AppError
            ? error
            : code === "PARSE" && error.cause instanceof AppError
              ? error.cause
              : null);
        if (known) {
          Object.assign(set.headers, known.headers);
          return errorResponse(known.code, known.status, known.message, known.details);
        }
        switch (code) {
          case "VALIDATION": {
            const first = error.valueError ?? error.all[0];
            const path = first?.path ? first.path.replace(/^\//, "").replaceAll("/", ".") : "";
            const field = path || unnamedField(error.type, error.value, request.url);
            const why =
              first?.schema && "error" in first.schema ? String(first.schema.error) : first?.message;
            return errorResponse("validation_failed", 422, `${field}: ${why ?? "invalid"}`, { field });
          }
          case "PARSE":
            return errorResponse("bad_request", 400, "malformed request body");
          case "NOT_FOUND":
            return errorResponse("not_found", 404, "no such route");
          case "INVALID_COOKIE_SIGNATURE":
          case "INVALID_FILE_TYPE":
            return errorResponse("bad_request", 400, "bad request");
          default: {
            const down = storageUnavailable(error);
            if (down) {
              logger.warn({ code: down, path: safePath(request.url) }, "storage unavailable");
              Object.assign(set.headers, { "Retry-After": "5" });
              return errorResponse("unavailable", 503, "storage is unavailable; try again");
            }
            logger.error(
              {
                err:
                  error instanceof Error
                    ? { name: error.name, message: error.message, stack: error.stack }
                    : error,
                path: safePath(request.url),
              },
              "unhandled error",
            );
            return errorResponse("internal", 500, "internal error");
          }
        }
      })
      .onAfterResponse({ as: "global" }, (ctx) => {
        const { request, set } = ctx;
        // requestContext's onRequest ran first, for every request; the auth guard adds the user.
        const extra = ctx as unknown as Started & { userId?: string };
        const status = typeof set.status === "number" ? set.status : 200;
        const ms = performance.now() - extra.startedAt;
        // The route's pattern, never the path (ids would make a series per user), and a known method:
        // labels a client could choose freely would let it grow the metrics without bound.
        // A group's root route ends in "/" (`/api/users/`): named without it, as the API is written.
        const route = ctx.route ? ctx.route.replace(/(.)\/$/, "$1") : "unmatched";
        const method = METHODS.has(request.method) ? request.method : "other";
        metrics.http.requests.inc([method, route, String(status)]);
        metrics.http.seconds.observe(ms / 1000, [method, route]);
        logger.info(
          {
            req_id: extra.requestId,
            method: request.method,
            path: safePath(request.url),
            status,
            ms: Math.round(ms * 10) / 10,
            user_id: extra.userId,
          },
          "request",
        );
      })
  );
}

/**
 * The body, refused with 413 as soon as it passes `max` bytes: a declared length was checked on arrival
 * (onRequest); a body sent without one (chunked) is read only up to the limit, never buffered whole.
 */
async function readBody(request: Request, max: number): Promise<Uint8Array> {
  const tooLarge = () => new AppError("payload_too_large", `body over ${max} bytes`);
  if (request.headers.has("content-length")) {
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.byteLength > max) throw tooLarge();
    return bytes;
  }
  const reader = request.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks);
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
}
