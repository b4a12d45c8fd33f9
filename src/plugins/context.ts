// Per-request context every controller may read: request id, client IP and start time.
// Named, so mounting it in several controllers runs it once per request.

import type { Server } from "bun";
import { Elysia } from "elysia";
import type { Config } from "../config.ts";
import { newId } from "../lib/ids.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The client's address. Behind TRUST_PROXY proxies the operator vouches for, each appending to
 * X-Forwarded-For the address it got the request from, the entry that many places from the right: the one
 * the outermost proxy appended for the peer it saw. The entries before it come from the client, which can
 * write anything there (taking the first let a client pick its address and step around every per-address
 * limit). A list shorter than the chain (a proxy that did not append) gives its first entry; with no
 * proxies trusted, the peer address.
 */
export function clientAddress(
  request: Request,
  server: Pick<Server<unknown>, "requestIP"> | null | undefined,
  trustedProxies: number,
  forwardedFor = request.headers.get("x-forwarded-for") ?? undefined,
): string {
  // Several X-Forwarded-For headers arrive here joined into one list, in order.
  const entries = trustedProxies > 0 ? forwardedFor?.split(",") : undefined;
  const forwarded = entries?.[Math.max(entries.length - trustedProxies, 0)]?.trim();
  return forwarded || server?.requestIP(request)?.address || "unknown";
}

/**
 * A client address as the per-address limits count it: an IPv4 address (or one mapped into IPv6) as it
 * is; an IPv6 one by its first 64 bits, however it is written. A home or a host is given a whole /64: had
 * each of its 2^64 addresses a bucket of its own, any client with one could step around every limit.
 */
export function addressKey(address: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (v4) return `ip:${v4[1]}`;
  const groups = ipv6Groups(address);
  return groups ? `ip6:${groups.slice(0, 4).join(":")}::/64` : `ip:${address}`;
}

/** The eight groups of an IPv6 address (lowercase, without leading zeros), or null if it is not one. */
function ipv6Groups(address: string): string[] | null {
  let text = address
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/%.*$/, "");
  if (!text.includes(":") || !/^[0-9a-f:.]+$/.test(text)) return null;
  // A dotted IPv4 tail (::ffff:1.2.3.4 and its kin) is the last two groups.
  const dotted = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const [head = "", tail = ""] = halves;
  const before = head ? head.split(":") : [];
  const after = tail ? tail.split(":") : [];
  const missing = 8 - before.length - after.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...before, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...after];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => g.replace(/^0+(?=.)/, ""));
}

/**
 * Whether the client reached Parley over HTTPS (or WSS). Behind trusted proxies, X-Forwarded-Proto is read
 * as X-Forwarded-For is: the entry the outermost proxy wrote, so that a value the client sent is never
 * taken (a proxy that replaces the header leaves one entry, which is its own). Without it, whether this
 * server ends TLS itself.
 */
export function overHttps(request: Request, config: Pick<Config, "TRUST_PROXY" | "TLS_CERT_FILE">): boolean {
  const forwarded = config.TRUST_PROXY > 0 ? request.headers.get("x-forwarded-proto") : null;
  if (forwarded === null) return Boolean(config.TLS_CERT_FILE);
  const entries = forwarded.split(",");
  const proto = entries[Math.max(entries.length - config.TRUST_PROXY, 0)]?.trim().toLowerCase();
  return proto === "https" || proto === "wss";
}

/**
 * API calls already counted against the limit of calls (`api`), so that each is counted once: on arrival
 * when it carries no token, by the auth guard when its route reads one (per user when the token is good),
 * and otherwise (a token no guard reads: a route that takes none, a 404, a refused body) per address,
 * before it is handled or answered (plugins/http.ts).
 */
export const countedCalls = new WeakSet<Request>();

/** What onRequest leaves on the context: every request has it, the ones no route takes too. */
export interface Started {
  requestId: string;
  startedAt: number;
}

export function requestContext(config: Pick<Config, "TRUST_PROXY">) {
  return (
    new Elysia({ name: "parley.context" })
      // Before routing, so that answers no route gives (404, early 413/415) carry the id too and the access
      // log and metrics see their start.
      .onRequest((ctx) => {
        const given = ctx.request.headers.get("x-request-id");
        const requestId = given && REQUEST_ID.test(given) ? given : newId();
        Object.assign(ctx, { requestId, startedAt: performance.now() } satisfies Started);
        ctx.set.headers["x-request-id"] = requestId;
      })
      .derive({ as: "global" }, (ctx) => {
        const { request, server, headers } = ctx;
        const { requestId, startedAt } = ctx as unknown as Started;
        return {
          requestId,
          clientIp: clientAddress(request, server, config.TRUST_PROXY, headers["x-forwarded-for"]),
          startedAt,
        };
      })
  );
}
