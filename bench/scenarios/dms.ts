// DMs: pairs of users, each pair in its own dm, every user sending to its partner, against Parley, the
// ceiling, ws and Socket.IO. A steady phase (a fixed rate per user) and a max phase (each user keeps a small
// window in flight). For Parley every delivered message was stored first, so deliveries/s is persisted
// messages/s; for the ceiling and the peers it is their relay (echo) rate. A full run measures the targets
// in turn twice (lib/rounds.ts) and keeps each one's better window.

import { RoundRows, roundsFor } from "../lib/rounds.ts";
import { ackProbe } from "../lib/server-metrics.ts";
import { startTarget, TARGETS, type Target } from "../lib/targets.ts";
import type { Scenario } from "../lib/types.ts";
import type { SenderSpec } from "../loadgen/protocol.ts";
import { failedResult, measureMs, openLoad, toResult } from "../loadgen/run.ts";

const WORKERS = 2;
const WINDOW = 2;

export const dms: Scenario = async ({ quick, log }) => {
  const users = quick ? 200 : 5000;
  const perUserRate = quick ? 2 : 1;
  const timing = quick
    ? { warmupMs: 750, measureMs: measureMs(2000), drainMs: 300 }
    : { warmupMs: 3000, measureMs: measureMs(10_000), drainMs: 2000 };
  const scenario = `dms-${users / 2}`;
  const rows = new RoundRows();
  const rounds = roundsFor(quick);
  for (let round = 1; round <= rounds; round++) {
    const tag = rounds > 1 ? ` (round ${round} of ${rounds})` : "";
    for (const name of TARGETS) {
      let target: Target | undefined;
      let load: Awaited<ReturnType<typeof openLoad>> | undefined;
      try {
        log(`${scenario}: ${name}${tag}: starting (${users} users)`);
        target = await startTarget(name);
        const pairs = Array.from({ length: users / 2 }, (_, i) => [2 * i, 2 * i + 1]);
        const prepared = await target.prepare(users, pairs);
        // Both users of a dm live in one worker, so each is the other's probe.
        load = await openLoad(prepared, target.pid, WORKERS, (i) => Math.floor(i / 2) % WORKERS);
        const senders = (extra: Partial<SenderSpec>): SenderSpec[] =>
          Array.from({ length: users }, (_, i) => ({
            conn: i,
            room: prepared.roomIds[Math.floor(i / 2)] as string,
            probe: i ^ 1,
            ...extra,
          }));
        const base = { users, dms: users / 2, workers: WORKERS, ...timing };

        // Parley's own arrival-to-ack times over each window (server-metrics.ts); the peers have none.
        const acks = target.scrapeMetrics && ackProbe(target.scrapeMetrics);
        const steady = await load.phase(senders({ rate: perUserRate }), timing, acks);
        rows.add(
          toResult(scenario, name, { ...base, mode: "steady", rate_per_user: perUserRate }, steady, {
            offered_per_s: users * perUserRate,
          }),
        );
        log(
          `${scenario}: ${name}${tag}: steady ${Math.round(steady.deliveriesPerSec)}/s, p99 ${steady.hist.summary().p99} ms`,
        );

        const max = await load.phase(senders({ window: WINDOW }), timing, acks);
        rows.add(toResult(scenario, name, { ...base, mode: "max", window_per_user: WINDOW }, max));
        log(
          `${scenario}: ${name}${tag}: max ${Math.round(max.deliveriesPerSec)}/s, p99 ${max.hist.summary().p99} ms`,
        );
      } catch (err) {
        log(`${scenario}: ${name}${tag}: FAILED ${err}`);
        rows.add(failedResult(scenario, name, { users }, err));
      } finally {
        await load?.close();
        await target?.stop();
      }
    }
  }
  return rows.best();
};
