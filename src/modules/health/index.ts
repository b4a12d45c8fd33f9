// Liveness (/health: the process answers) and readiness (/ready: the store answers too, and the broker
// that joins this node to the others, when there are others).

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";
import { within } from "../../lib/within.ts";

const READY_TIMEOUT_MS = 2000;

export function healthController({ store, broker }: Pick<Deps, "store" | "broker">) {
  const brokerKind = broker.shared ? "redis" : "memory";
  return new Elysia({ tags: ["health"] })
    .get("/health", () => ({ status: "ok" as const }), { response: t.Object({ status: t.Literal("ok") }) })
    .get("/ready", async ({ set }) => {
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
