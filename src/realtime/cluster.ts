// This node among the others: the fanout and what the other nodes' word does here, presence and who is
// online across nodes (attendance), the look again at its sockets after a Redis outage, and what the node
// does as it tends its broker (every TEND_MS). On one node alone most of it has nothing to do.

import type { Deps } from "../deps.ts";
import { isoOrNull } from "../lib/clock.ts";
import { errorText } from "../lib/errors.ts";
import { Attendance } from "./attendance.ts";
import type { Connections } from "./connections.ts";
import { Fanout } from "./fanout.ts";
import { Presence, presenceFrame } from "./presence.ts";
import { Reconciler } from "./reconcile.ts";
import { NODE_WIDE } from "./relay.ts";

/** How often the node tends its broker: idle channels, a failed join, dead nodes' users. */
const TEND_MS = 10_000;

export function joinCluster(deps: Omit<Deps, "gateway">, connections: Connections) {
  const { clock, sessions, logger, broker, metrics } = deps;
  const fanout = new Fanout(connections, broker, {
    forget: (conversationId) => deps.membership.forget(conversationId),
    revoked: (ids) => sessions.invalidate(ids, "elsewhere"),
    peersOf: (userId) => deps.store.conversations.peersOf(userId),
    presenceOf: async (userId) => {
      const user = await deps.store.users.byId(userId);
      return user && presenceFrame(userId, user.status, isoOrNull(user.last_seen));
    },
    reconcile: () => void reconciler.run(),
    retell: (userIds) =>
      void presence.retell(userIds, { everywhere: true }).catch((err: unknown) => {
        logger.warn({ err: errorText(err) }, "presence: could not tell again what another node missed");
      }),
    missed: (missed) => {
      if (missed.session_ids.length > 0) sessions.invalidate(missed.session_ids, "elsewhere");
      void reconciler.runFor({
        conversations: missed.conversation_ids,
        users: missed.user_ids,
        heads: missed.head_ids,
      });
      if (missed.presence_ids.length > 0)
        presence.retell(missed.presence_ids).catch((err: unknown) => {
          logger.warn({ err: errorText(err) }, "presence: could not tell what another node missed");
        });
    },
    failed: (err, what) =>
      what === "join"
        ? logger.warn(
            { err: errorText(err) },
            "broker: could not join a channel for a socket; it is joined again as the node tends",
          )
        : logger.warn({ err: errorText(err) }, "relayed message dropped"),
    counters: metrics.broker,
  });
  const presence = new Presence(deps.store, clock, fanout);
  // A node that had lost Redis looks again at its sockets, and tells the others what they missed of it;
  // the users it let go of meanwhile are settled once counts are trusted again.
  const reconciler = new Reconciler({ ...deps, connections, fanout });
  const attendance = new Attendance({ broker, connections, presence, users: deps.store.users });
  broker.onReconnect((downMs) => {
    fanout.reconnected(downMs);
    void reconciler.run();
  });
  const settle = () =>
    attendance.settle().catch((err: unknown) => {
      logger.warn({ err: errorText(err) }, "broker: presence after a reconnect not settled yet");
    });
  // Counts are trusted again after this node's were missing from Redis: while they were, other nodes may
  // have written offline users it holds.
  broker.onSettled(() => {
    attendance.recheckHeld();
    void settle();
  });
  // Redis lost what the nodes keep there: whom a node that died meanwhile held, no sweep can tell.
  broker.onEmptied(() => {
    attendance.settleEveryone();
    void settle();
  });
  // Revocations reach every node; the rest only nodes with sockets that listen (fanout.ts). A join that
  // failed (Redis down at boot) is tried again with every tending.
  const joinNodeWide = () => {
    if (!broker.shared || broker.joined.has(NODE_WIDE)) return;
    broker.join([NODE_WIDE]).catch((err: unknown) => {
      logger.error({ err: errorText(err) }, "broker: could not join");
    });
  };
  joinNodeWide();
  const tending = async () => {
    fanout.leaveIdle();
    joinNodeWide();
    await presence.retellUntold().catch((err: unknown) => {
      logger.warn({ err: errorText(err) }, "presence: could not tell a change to the user's peers yet");
    });
    // Presence writes the store refused are tried again here, on a node alone too.
    if (!broker.shared) return settle();
    // Not while Redis is lost, or just back: joins would only time out (the reconnect joins what the sockets
    // need, reconcile.ts), and a node still putting its counts back would look to the sweep as if it held
    // nobody.
    if (broker.settled) {
      await fanout.rejoin().catch((err: unknown) => {
        logger.warn(
          { err: errorText(err) },
          "broker: could not join again the channels of this node's sockets",
        );
      });
      await attendance.sweepDeadNodes().catch((err: unknown) => {
        logger.warn({ err: errorText(err) }, "broker: sweep failed");
      });
    }
    await settle();
  };
  const timer = setInterval(() => void tending(), TEND_MS);
  timer.unref?.();

  return {
    fanout,
    presence,
    attendance,
    /** What runs every TEND_MS (see Gateway.tend). */
    tend: tending,
    stop() {
      clearInterval(timer);
      reconciler.stop();
      attendance.stop();
    },
  };
}
