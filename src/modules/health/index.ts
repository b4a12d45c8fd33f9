// Liveness (/health: the process answers) and readiness (/ready: the store answers too, and the broker
// that joins this node to the others, when there are others; and the node is not shutting down).

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";
import { within } from "../../lib/within.ts";

const READY_TIMEOUT_MS = 2000;

export function healthController({ store, broker, gateway }: Pick<Deps, "store" | "broker" | "gateway">) {
  const brokerKind = broker.shared ? "redis" : "memory";
  return new Elysia({ tags: ["health"] })
    .get("/health", () => ({ status: "ok" as const }), { response: t.Object({ status: t.Literal("ok") }) })
    .get("/ready", async ({ set }) => {
      // Shutting down (its sockets told to go elsewhere, its presence being written): a load balancer
      // sends nothing new here, though the listener still answers for a few seconds.
      if (gateway.closing) {
        set.status = 503;
        return { status: "unavailable", store: store.kind, broker: brokerKind, failing: ["shutdown"] };
      }
      const answers = (ping: () => Promise<void>) =>
        within(
          ping().then(
            () => true,
            () => false,
          ),
          READY_TIMEOUT_MS,
          () => false,
        );
      const [storeUp, brokerUp] = await Promise.all([
        answers(() => store.ping()),
        answers(() => broker.ping()),
      ]);
      const body = { store: store.kind, broker: brokerKind };
      if (storeUp && brokerUp) return { status: "ready", ...body };
      set.status = 503;
      return {
        status: "unavailable",
        ...body,
        failing: [...(storeUp ? [] : ["store"]), ...(brokerUp ? [] : ["broker"])],
      };
    });
}
