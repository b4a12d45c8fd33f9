// The WebSocket gateway: authenticated upgrade at /ws/{user_id}/{session_id}, receive-only public
// channels at /ws/public/{channel}, per-connection limits, heartbeat and revocation.

import type { Server } from "bun";
import { Elysia } from "elysia";
import type { Deps } from "../deps.ts";
import { AppError, errorText } from "../lib/errors.ts";
import { within } from "../lib/within.ts";
import { bearerToken } from "../modules/auth/guard.ts";
import { clientAddress } from "../plugins/context.ts";
import type { UserRecord } from "../store/types.ts";
import { joinCluster } from "./cluster.ts";
import { decode } from "./codec.ts";
import { Connections, type Socket, type SocketState } from "./connections.ts";
import { Dispatcher, sendError } from "./dispatch.ts";
import { type Fanout, topics } from "./fanout.ts";
import { send } from "./outbox.ts";
import {
  BEARER_PREFIX,
  CHANNEL_NAME,
  CLIENT_FRAME_TYPES,
  CLOSE,
  checkClientFrame,
  ENCODINGS,
  type Encoding,
  frameError,
  SUBPROTOCOLS,
} from "./protocol.ts";

/** How often slow consumers and silent sockets are looked for. */
const SWEEP_MS = 250;
/** How long shutdown waits for the presence of the users whose sockets it closed. */
const SHUTDOWN_PRESENCE_MS = 5000;
/** The close codes this server sends (metrics label close codes by them; others are "other"). */
const CLOSE_CODES = new Set<number>(Object.values(CLOSE));
/** The reason Bun gives the close handler of a socket it closed (1009) for a frame over maxPayloadLength. */
const OVERSIZE_REASON = "Received too big message";
/** Refused frames in a row before a flooding connection is closed. */
const MAX_DENIED = 20;
/** Reads of a user's conversations at a socket's open, each changed under it, before it is told to try again. */
const MAX_LIST_READS = 5;
/** What a public socket (receive-only, no account) may send. */
const PUBLIC_FRAMES = new Set(["ping", "subscribe", "unsubscribe"]);

export interface Gateway {
  plugin: Elysia;
  fanout: Fanout;
  connections: Connections;
  /**
   * What runs every TEND_MS: leaves idle broker channels, joins again those whose join failed (the node-wide
   * one, those its sockets listen to), and writes offline the users a dead node held.
   */
  tend(): Promise<void>;
  /**
   * A user chose a status over REST (written as their choice): shown, and told to their peers as a
   * presence_update's is, if they are connected on any node; returns the user as then stored (null when
   * they are connected nowhere).
   */
  statusChosen(userId: string): Promise<UserRecord | null>;
  /** Closes every socket (4000) and waits, a few seconds at most, for their users' presence to be written. */
  close(): Promise<void>;
  /** close() has been called: the node is shutting down (upgrades refused, /ready 503). */
  readonly closing: boolean;
}

function negotiate(header: string | null): { encoding: Encoding; protocol?: string; token?: string } {
  const offered = (header ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const token = offered.find((p) => p.startsWith(BEARER_PREFIX))?.slice(BEARER_PREFIX.length);
  // The server's preference (ENCODINGS' order), whatever the order offered.
  const encoding = ENCODINGS.find((e) => offered.includes(SUBPROTOCOLS[e]));
  if (encoding) return { encoding, protocol: SUBPROTOCOLS[encoding], token };
  // A browser that offered only the bearer entry must get one protocol back or it drops the connection.
  return {
    encoding: "json",
    protocol: token ? offered.find((p) => p.startsWith(BEARER_PREFIX)) : undefined,
    token,
  };
}

export function createGateway(deps: Omit<Deps, "gateway">): Gateway {
  const { config, clock, signer, sessions, logger, broker, metrics } = deps;
  const connections = new Connections();
  const { fanout, presence, attendance, tend, stop } = joinCluster(deps, connections);
  metrics.registry.gauge(
    "parley_ws_connections",
    "Open WebSockets on this node, by encoding",
    ["encoding"],
    () => ENCODINGS.map((encoding) => [[encoding], connections.speaking(encoding)]),
  );
  const dispatcher = new Dispatcher(deps, fanout, presence, connections);
  metrics.registry.gauge(
    "parley_ws_resumes",
    'Resume frames being answered on this node: "paced" those waiting for their socket to drain, "sending" the others (reading, sending, or waiting for the socket\'s previous resume)',
    ["state"],
    () => {
      const paced = dispatcher.pacer.waiting;
      return [
        [["sending"], dispatcher.resuming - paced],
        [["paced"], paced],
      ];
    },
  );
  fanout.left = (ws, topic) => dispatcher.left(ws, topic);
  fanout.typedElsewhere = (frame) => dispatcher.typedElsewhere(frame);
  fanout.demoted = (conversationId, userId) => dispatcher.demoted(conversationId, userId);
  const offHub = deps.hub.onEvent((event) => fanout.onEvent(event));
  const offRevoke = sessions.onRevoke((ids, origin) => {
    for (const id of ids)
      for (const ws of [...connections.ofSession(id)]) ws.close(CLOSE.sessionRevoked, "session revoked");
    if (origin === "here") fanout.revoke(ids);
  });

  // Slow consumers, silent sockets and ended sessions: a check per socket, not a fanout loop; sends stay
  // in Bun topics. A session's end is on the app's clock (tests move it); silence is on the wall clock.
  // A socket a paced catch-up waits on stays under the limit, and is a slow consumer once it has taken
  // nothing of its queue for WS_DRAIN_TIMEOUT (pacing.ts).
  const sweep = setInterval(() => {
    const now = Date.now();
    const appNow = clock.now();
    for (const ws of connections.all) {
      if (ws.getBufferedAmount() > config.WS_BACKPRESSURE_LIMIT)
        ws.close(CLOSE.slowConsumer, "slow consumer");
      else if (now - ws.data.lastSeen > config.WS_CONNECTION_TIMEOUT * 1000) ws.close(CLOSE.idle, "idle");
      else if (ws.data.expiresAt !== 0 && ws.data.expiresAt <= appNow)
        ws.close(CLOSE.unauthorized, "session expired");
    }
    for (const ws of dispatcher.pacer.stalled(now)) ws.close(CLOSE.slowConsumer, "slow consumer");
  }, SWEEP_MS);
  sweep.unref?.();

  /** Token bucket per connection: WS_RATE_PER_SECOND refill, WS_RATE_BURST capacity. */
  function allow(state: SocketState, now: number): boolean {
    state.tokens = Math.min(
      config.WS_RATE_BURST,
      state.tokens + ((now - state.refilledAt) / 1000) * config.WS_RATE_PER_SECOND,
    );
    state.refilledAt = now;
    if (state.tokens < 1) return false;
    state.tokens -= 1;
    return true;
  }

  function onMessage(ws: Socket, data: string | Buffer) {
    const state = ws.data;
    const now = Date.now();
    state.lastSeen = now;
    // Decoded before the rate check so that a refusal can echo the frame's ref (frames are small:
    // WS_MAX_PAYLOAD bounds the work a flood can cause).
    let frame: unknown;
    let decoded = true;
    try {
      frame = decode(data, state.encoding);
    } catch {
      decoded = false;
    }
    const ref = (frame as { ref?: unknown } | null | undefined)?.ref;
    // Only a ref the schema allows is echoed: a frame must not make the server send back large strings.
    const echo = (typeof ref === "string" && ref.length <= 64) || typeof ref === "number" ? ref : undefined;
    if (!allow(state, now)) {
      // Received all the same: counted under its refusal, not its type, which is not checked yet.
      metrics.ws.frames.inc(["rate_limited"]);
      metrics.rateLimited.inc(["ws_frames"]);
      state.denied++;
      if (state.denied > MAX_DENIED) ws.close(CLOSE.rateLimited, "rate limited");
      else sendError(ws, echo, "rate_limited", "too many frames; slow down");
      return;
    }
    state.denied = 0;
    if (!decoded) {
      metrics.ws.frames.inc(["invalid"]);
      return sendError(ws, undefined, "bad_frame", "not a frame of this connection's encoding");
    }
    if (!checkClientFrame.Check(frame)) {
      metrics.ws.frames.inc(["invalid"]);
      const type = (frame as { type?: unknown } | null)?.type;
      if (typeof type === "string" && !CLIENT_FRAME_TYPES.includes(type)) {
        return sendError(ws, echo, "unknown_type", `unknown frame type ${type.slice(0, 32)}`);
      }
      if (typeof type !== "string")
        return sendError(ws, echo, "bad_frame", "a frame is an object with a type");
      return sendError(ws, echo, "validation_failed", frameError(frame as { type: string }));
    }
    metrics.ws.frames.inc([frame.type]);
    if (state.kind === "public" && !PUBLIC_FRAMES.has(frame.type)) {
      return sendError(ws, frame.ref, "forbidden", "public channels are receive-only");
    }
    void dispatcher.handle(ws, frame);
  }

  /** Set by close(): upgrades are refused from then on. */
  let closing = false;

  function opened(ws: Socket, err: unknown) {
    logger.error({ err: errorText(err) }, "socket open failed");
    ws.close(CLOSE.restart, "try again");
  }

  function onOpen(ws: Socket) {
    // Upgraded as the node began to close (its checks passed before): told to reconnect, as the others were.
    if (closing) {
      connections.add(ws);
      ws.close(CLOSE.restart, "server shutting down");
      return;
    }
    connections.add(ws);
    metrics.ws.opened.inc([ws.data.kind]);
    const { kind, user_id, session_id } = ws.data;
    if (kind === "public") {
      fanout.subscribe(ws, topics.channel(ws.data.channel)).catch((err: unknown) => opened(ws, err));
      return;
    }
    // Subscribed before hello, on every node: anything published after the client sees hello reaches it.
    stillLive(ws)
      .then((live) => (live ? subscribeAll(ws).then(() => true) : false))
      .then(async (live) => {
        if (!live || !connections.all.has(ws)) return;
        send(ws, {
          type: "hello",
          user_id,
          session_id,
          server_time: new Date().toISOString(),
          heartbeat_interval: config.WS_HEARTBEAT_INTERVAL,
          // The limits a client must keep to, so that it can refuse a frame itself instead of being closed.
          max_payload: config.WS_MAX_PAYLOAD,
          rate_per_second: config.WS_RATE_PER_SECOND,
          rate_burst: config.WS_RATE_BURST,
        });
        // Counted since its upgrade; the user's first socket shows their status once it is open for good.
        if (!ws.data.announce) return;
        ws.data.announce = false;
        // The socket is open and told so: a presence the store cannot write (a full disk) is not a reason
        // to close it (its clients would reconnect, be closed again, and loop).
        await presence.show(user_id).catch((err: unknown) => {
          logger.warn({ err: errorText(err), user_id }, "presence: could not write the user online");
          // Written when the gateway next tends, with the other users held here whom the store has offline.
          attendance.recheckHeld();
        });
      })
      .catch((err: unknown) => opened(ws, err));
  }

  /**
   * The session is asked about again once the socket is open: a revocation between the upgrade's check and
   * the open found no socket of the session to close (it was not in `connections` yet), and the socket
   * would have lived on. From here on a revocation finds it. Answered from the session cache, which a
   * revocation empties of that session.
   */
  async function stillLive(ws: Socket): Promise<boolean> {
    const live = await sessions.state(ws.data.session_id, ws.data.user_id);
    if (live === "live") return true;
    if (live === "expired") ws.close(CLOSE.unauthorized, "session expired");
    else ws.close(CLOSE.sessionRevoked, "session revoked");
    return false;
  }

  function onDrain(ws: Socket) {
    dispatcher.drained(ws);
  }

  function onClose(ws: Socket, code: number, reason: string) {
    // A frame over WS_MAX_PAYLOAD: Bun closes the socket with 1009 but tells this handler 1006 (abnormal),
    // with its reason; counted as what the client was sent.
    if (code === 1006 && reason === OVERSIZE_REASON) code = CLOSE.tooLarge;
    // The client picks its close code: only the standard ones and ours are labels of their own.
    metrics.ws.closed.inc([(code >= 1000 && code <= 1015) || CLOSE_CODES.has(code) ? String(code) : "other"]);
    dispatcher.closed(ws);
    void release(ws);
  }

  /** A socket leaves this node's books, once. */
  async function release(ws: Socket): Promise<void> {
    connections.remove(ws);
    await attendance.givePlace(ws.data);
  }

  function tooManyConnections(): AppError {
    metrics.rateLimited.inc(["ws_connections"]);
    return new AppError(
      "rate_limited",
      `at most ${config.WS_MAX_CONNECTIONS_PER_USER} connections per user`,
      {
        headers: { "Retry-After": "5" },
      },
    );
  }

  /**
   * A socket's state: plain values, and callbacks shared by every socket. Nothing here may close over the
   * upgrade handler's scope, which holds the request (headers, token) for as long as the socket lives.
   */
  function state(
    kind: SocketState["kind"],
    userId: string,
    sessionId: string,
    encoding: Encoding,
    channel = "",
    ip = "",
  ): SocketState {
    return {
      kind,
      user_id: userId,
      session_id: sessionId,
      encoding,
      tokens: config.WS_RATE_BURST,
      refilledAt: Date.now(),
      denied: 0,
      counted: false,
      moves: 0,
      announce: false,
      errors: metrics.ws.errors,
      expiresAt: kind === "user" ? sessions.expiresAt(sessionId) : 0,
      lastSeen: Date.now(),
      channel,
      ip,
      open: onOpen,
      message: onMessage,
      drain: onDrain,
      close: onClose,
    };
  }

  /**
   * The user's topic and their conversations'; a device's own frames go to its sockets directly. The socket
   * is in `connections` while the list is read, so a membership change of its user meanwhile moves it
   * (ws.data.moves): a removal unsubscribes it from a topic it is not in yet, and subscribing it from the
   * list read before would leave a non-member hearing the conversation. The list is read again then. The
   * node joins the user's channel before the first read, and holds it until the socket listens to it, so
   * that a change made on another node meanwhile reaches it too.
   */
  function subscribeAll(ws: Socket): Promise<void> {
    const user = topics.user(ws.data.user_id);
    return fanout.joinAhead([user], async () => {
      for (let reads = 1; ; reads++) {
        const moves = ws.data.moves;
        const ids = await deps.store.conversations.idsForUser(ws.data.user_id);
        if (ws.data.moves === moves) {
          await fanout.subscribe(ws, user, ...ids.map(topics.conversation));
          return;
        }
        if (reads >= MAX_LIST_READS) throw new Error("the user's conversations kept changing while read");
      }
    });
  }

  /**
   * WS_MAX_CONNECTIONS: a full node answers 503, so that the client (or its load balancer) tries another
   * one later. Counted when sockets open, so a burst of upgrades at once can pass it by a few.
   */
  function refuseWhenFull() {
    // A node shutting down takes no more sockets: the client tries again, at another node once this one
    // has stopped listening. Opened here, it would be held until the listener closed and then dropped.
    if (closing) {
      throw new AppError("unavailable", "this node is shutting down; try again", {
        headers: { "Retry-After": "1" },
      });
    }
    if (connections.all.size < config.WS_MAX_CONNECTIONS) return;
    metrics.rateLimited.inc(["ws_node"]);
    throw new AppError("unavailable", `this node holds its ${config.WS_MAX_CONNECTIONS} sockets; try again`, {
      headers: { "Retry-After": "5" },
    });
  }

  /**
   * Hands the request to Bun, which answers it 101 and opens the socket; false when it is no upgrade. The
   * status is set for the access log and the metrics, which would otherwise read Elysia's default, 200.
   */
  function upgrade(
    request: Request,
    server: Server<unknown> | null,
    set: { status?: number | string },
    protocol: string | undefined,
    data: SocketState,
  ): boolean {
    const upgraded = Boolean(
      server?.upgrade(request, { headers: protocol ? { "Sec-WebSocket-Protocol": protocol } : {}, data }),
    );
    if (upgraded) set.status = 101;
    return upgraded;
  }

  function notAnUpgrade(set: { status?: number | string }) {
    set.status = 400;
    return { error: { code: "bad_request", message: "expected a WebSocket upgrade" } };
  }

  const plugin = new Elysia({ name: "parley.gateway" })
    .route("WS", "/ws/public/:channel", ({ request, server, params, set }) => {
      if (!CHANNEL_NAME.test(params.channel)) throw new AppError("validation_failed", "channel: bad name");
      refuseWhenFull();
      // Public sockets need no account: without this, one client could hold every socket the node has.
      const ip = clientAddress(request, server, config.TRUST_PROXY);
      if (connections.publicFrom(ip) >= config.WS_MAX_PUBLIC_PER_IP) {
        metrics.rateLimited.inc(["ws_public_per_ip"]);
        throw new AppError(
          "rate_limited",
          `at most ${config.WS_MAX_PUBLIC_PER_IP} public sockets per client address`,
          { headers: { "Retry-After": "5" } },
        );
      }
      const { encoding, protocol } = negotiate(request.headers.get("sec-websocket-protocol"));
      fanout.attach(server as Server<unknown>);
      const data = state("public", "", "", encoding, params.channel, ip);
      if (!upgrade(request, server, set, protocol, data)) return notAnUpgrade(set);
    })
    .route("WS", "/ws/:user_id/:session_id", async ({ request, server, params, query, set }) => {
      const {
        encoding,
        protocol,
        token: fromProtocol,
      } = negotiate(request.headers.get("sec-websocket-protocol"));
      const token = bearerToken(request.headers.get("authorization")) ?? fromProtocol ?? query.access_token;
      if (!token) throw new AppError("unauthorized", "missing access token");
      const claims = await signer.verify(token, clock.now());
      if (claims.sub !== params.user_id || claims.sid !== params.session_id) {
        throw new AppError("unauthorized", "token does not match the path");
      }
      const live = await sessions.state(claims.sid, claims.sub);
      if (live !== "live")
        throw new AppError(live === "expired" ? "token_expired" : "session_revoked", "session is not live");
      refuseWhenFull();
      // The socket takes its place in the count across nodes before anything else is awaited: the broker
      // counts it at once (one atomic step in Redis, in the order asked), so that each upgrade of a burst
      // sees those before it. A refused or failed upgrade gives it back; an open socket, when it closes
      // (Bun opens every socket it upgraded).
      const data = state("user", claims.sub, claims.sid, encoding);
      data.counted = true;
      let sockets: number;
      try {
        sockets = await broker.countSockets(claims.sub, 1);
      } catch {
        // Without Redis this node could not serve the socket anyway: 503, try again (another node, or later).
        // Not waited for (Redis is out of reach): the broker's own tally is right at once, and Redis is
        // told it again when it reconnects.
        void attendance.givePlace(data);
        throw new AppError("unavailable", "the other nodes cannot be reached; try again", {
          headers: { "Retry-After": "5" },
        });
      }
      data.announce = sockets === 1;
      if (sockets > config.WS_MAX_CONNECTIONS_PER_USER) {
        await attendance.givePlace(data);
        throw tooManyConnections();
      }
      fanout.attach(server as Server<unknown>);
      if (!upgrade(request, server, set, protocol, data)) {
        await attendance.givePlace(data);
        return notAnUpgrade(set);
      }
    });

  return {
    plugin: plugin as unknown as Elysia,
    fanout,
    connections,
    tend,
    async statusChosen(userId) {
      // Sockets here answer without Redis; a count that cannot be read shows nothing (the choice is kept,
      // and shown when they next connect).
      const here = connections.ofUser(userId).size > 0;
      if (!here && !((await broker.countSockets(userId, 0).catch(() => 0)) > 0)) return null;
      await presence.show(userId);
      // Their last socket may have closed meanwhile on another node, its offline write made before this one.
      if (!here) await attendance.followCount(userId);
      return deps.store.users.byId(userId);
    },
    get closing() {
      return closing;
    },
    /** Idempotent: shutdown calls it before stopping the listener, and closeDeps again. */
    async close() {
      closing = true;
      clearInterval(sweep);
      stop();
      offHub();
      offRevoke();
      // Accounted here rather than in each close handler, which may run after the store has closed: users
      // whose sockets were all here would stay online in it for good.
      const released: Promise<void>[] = [];
      for (const ws of [...connections.all]) {
        released.push(release(ws));
        ws.close(CLOSE.restart, "server shutting down");
      }
      await within(
        Promise.allSettled(released).then(() => {}),
        SHUTDOWN_PRESENCE_MS,
        () => {},
      );
    },
  };
}
