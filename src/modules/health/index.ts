// Liveness (/health: the process answers) and readiness (/ready: the store answers too).

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";

const READY_TIMEOUT_MS = 2000;

export function healthController({ store }: Pick<Deps, "store">) {
  return new Elysia({ tags: ["health"] })
    .get("/health", () => ({ status: "ok" as const }), { response: t.Object({ status: t.Literal("ok") }) })
    .get("/ready", async ({ set }) => {
      try {
        await Promise.race([
          store.ping(),
          new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), READY_TIMEOUT_MS)),
        ]);
        return { status: "ready", store: store.kind };
      } catch {
        set.status = 503;
        return { status: "unavailable", store: store.kind };
      }
    });
}
