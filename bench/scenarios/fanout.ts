// Fanout: one conversation of 100 members (and 1,000 in full mode), one sender, against Parley, the bare
// Bun ceiling, ws and Socket.IO. First as fast as a window of unseen messages allows (max rate), then open
// loop at half of Parley's max rate, so every target's latency is compared at the same offered load. A full
// run measures the targets in turn twice (lib/rounds.ts) and keeps each one's better window.

import { RoundRows, roundsFor } from "../lib/rounds.ts";
import { ackProbe } from "../lib/server-metrics.ts";
import { startTarget, TARGETS, type Target } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import { failedResult, measureMs, openLoad, toResult } from "../loadgen/run.ts";

const WORKERS = 2;
/**
 * Messages the sender may have in flight (sent, not yet seen by its probe receiver) at max rate: enough that
 * every target saturates its generators or itself. With 64, Parley's rate was window / latency (it stores
 * before it publishes) with the generators at ~80%: 0.46-0.49x of the ceiling against 0.59-0.61x with 256
 * in the same A/B, while the ceiling, already saturated at 64, gained nothing.
 */
export const WINDOW = 256;
/** Used for the fixed-rate phase only if Parley's max-rate phase failed. */
export const FALLBACK_RATE = 100;

/** Room sizes and phase timing, shared with the cross-node scenario (the same phases over two nodes). */
export const fanoutPlan = (quick: boolean) => ({
  sizes: quick ? [100] : [100, 1000],
  timing: quick
    ? { warmupMs: 750, measureMs: measureMs(2000), drainMs: 300 }
    : { warmupMs: 2000, measureMs: measureMs(10_000), drainMs: 1000 },
});

export const fanout: Scenario = async ({ quick, log }) => {
  const { sizes, timing } = fanoutPlan(quick);
  const results: ScenarioResult[] = [];
  const rounds = roundsFor(quick);
  for (const members of sizes) {
    const rows = new RoundRows();
    /**
     * Half of Parley's maximum in the first round that measured one, kept for the rounds after it, so that
     * every target's p99 is taken at one rate (FALLBACK_RATE before Parley has measured a maximum).
     */
    let fixedRate: number | undefined;
    for (let round = 1; round <= rounds; round++) {
      for (const name of TARGETS) {
        const scenario = `fanout-${members}`;
        const tag = rounds > 1 ? ` (round ${round} of ${rounds})` : "";
        let target: Target | undefined;
        let load: Awaited<ReturnType<typeof openLoad>> | undefined;
        try {
          log(`${scenario}: ${name}${tag}: starting`);
          target = await startTarget(name);
          const prepared = await target.prepare(members, [Array.from({ length: members }, (_, i) => i)]);
          // The sender (user 0) and its probe share worker 0; the other receivers are spread over the workers.
          load = await openLoad(prepared, target.pid, WORKERS, (i) => (i === 0 ? 0 : i % WORKERS));
          const probe = Math.max(WORKERS, 1); // user WORKERS is in worker 0 (user 1 when there is one worker)
          const room = prepared.roomIds[0] as string;
          const base = { members, receivers: members - 1, workers: WORKERS, ...timing };

          // Parley's own arrival-to-ack times over each window: how much of the latency is the server's.
          const acks = target.scrapeMetrics && ackProbe(target.scrapeMetrics);
          const max = await load.phase([{ conn: 0, room, probe, window: WINDOW }], timing, acks);
          rows.add(toResult(scenario, name, { ...base, mode: "max", window: WINDOW }, max));
          log(
            `${scenario}: ${name}${tag}: max ${Math.round(max.deliveriesPerSec)} deliveries/s, p99 ${max.hist.summary().p99} ms, drained in ${max.drainMs} ms (${max.late} late)`,
          );
          if (name === "parley" && fixedRate === undefined)
            fixedRate = Math.max(1, Math.round(max.sentPerSec / 2));

          const rate = fixedRate ?? FALLBACK_RATE;
          const fixed = await load.phase([{ conn: 0, room, probe, rate }], timing, acks);
          rows.add(toResult(scenario, name, { ...base, mode: "fixed", rate }, fixed));
          log(
            `${scenario}: ${name}${tag}: ${rate} msg/s: p99 ${fixed.hist.summary().p99} ms, drained in ${fixed.drainMs} ms`,
          );
        } catch (err) {
          log(`${scenario}: ${name}${tag}: FAILED ${err}`);
          rows.add(failedResult(scenario, name, { members }, err));
        } finally {
          await load?.close();
          await target?.stop();
        }
      }
    }
    results.push(...rows.best());
  }
  return results;
};
