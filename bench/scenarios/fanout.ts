// Fanout: one conversation of 100 members (and 1,000 in full mode), one sender, against Parley, the bare
// Bun ceiling, ws and Socket.IO. First as fast as a window of unseen messages allows (max rate), then open
// loop at half of Parley's max rate, so every target's latency is compared at the same offered load. A full
// run measures the targets in turn twice (lib/rounds.ts) and keeps each one's better window.

import { byMode, RoundRows, roundsFor } from "../lib/rounds.ts";
import { ackProbe } from "../lib/server-metrics.ts";
import { startTarget, TARGETS, type Target, type TargetName } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import { failedResult, measureMs, openLoad, type PhaseResult, toResult } from "../loadgen/run.ts";

const WORKERS = 2;
/**
 * Messages the sender may have in flight (sent, not yet seen by its probe receiver) at max rate: enough that
 * every target saturates its generators or itself. With 64, Parley's rate was window / latency (it stores
 * before it publishes) with the generators at ~80%: 0.46-0.49x of the ceiling against 0.59-0.61x with 256
 * in the same A/B, while the ceiling, already saturated at 64, gained nothing.
 */
export const WINDOW = 256;
/** Used for the fixed-rate phase only while Parley's max-rate phase has given no rate. */
export const FALLBACK_RATE = 100;

/**
 * Half of the rate Parley's max phase sent at: the fixed phase's rate, so that every target's p99 is taken
 * at one load. None when that phase delivered nothing: a rate no one received is no maximum.
 */
export const halfOfMax = (max: PhaseResult): number | undefined =>
  max.received > 0 ? Math.max(1, Math.round(max.sentPerSec / 2)) : undefined;

/**
 * A fixed phase's settings: its rate, and what the rate is (`rate_basis`), half of Parley's max or, while
 * there is none (Parley failed, delivered nothing, or is not among BENCH_TARGETS), FALLBACK_RATE. RESULTS.md
 * compares two targets' fixed phases only at one rate (lib/render.ts).
 */
export const fixedRate = (half: number | undefined) =>
  half === undefined
    ? { rate: FALLBACK_RATE, rate_basis: "fallback" as const }
    : { rate: half, rate_basis: "half_parley_max" as const };

/** Room sizes and phase timing, shared with the cross-node scenario (the same phases over two nodes). */
export const fanoutPlan = (quick: boolean) => ({
  sizes: quick ? [100] : [100, 1000],
  timing: quick
    ? { warmupMs: 750, measureMs: measureMs(2000), drainMs: 300 }
    : { warmupMs: 2000, measureMs: measureMs(10_000), drainMs: 1000 },
});

export const fanout: Scenario = ({ quick, log }) => fanoutOf(TARGETS, { quick, log });

/** The scenario over `names`, each started by `start` (a test's stand-in may fail one in a round). */
export async function fanoutOf(
  names: readonly TargetName[],
  { quick, log }: { quick: boolean; log: (line: string) => void },
  start: typeof startTarget = startTarget,
): Promise<ScenarioResult[]> {
  const { sizes, timing } = fanoutPlan(quick);
  const results: ScenarioResult[] = [];
  const rounds = roundsFor(quick);
  for (const members of sizes) {
    const rows = new RoundRows();
    /**
     * Half of Parley's maximum in the first round that measured one, kept for the rounds after it, so that
     * every target's p99 is taken at one rate. Rounds before it (Parley failed) ran at FALLBACK_RATE: those
     * fixed phases are set aside below where the target has one at this rate.
     */
    let half: number | undefined;
    for (let round = 1; round <= rounds; round++) {
      for (const name of names) {
        const scenario = `fanout-${members}`;
        const tag = rounds > 1 ? ` (round ${round} of ${rounds})` : "";
        let target: Target | undefined;
        let load: Awaited<ReturnType<typeof openLoad>> | undefined;
        try {
          log(`${scenario}: ${name}${tag}: starting`);
          target = await start(name);
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
          if (name === "parley" && half === undefined) half = halfOfMax(max);

          const fixed = fixedRate(half);
          const measured = await load.phase([{ conn: 0, room, probe, rate: fixed.rate }], timing, acks);
          rows.add(toResult(scenario, name, { ...base, mode: "fixed", ...fixed }, measured));
          log(
            `${scenario}: ${name}${tag}: ${fixed.rate} msg/s${half === undefined ? " (the fallback)" : ""}: p99 ${measured.hist.summary().p99} ms, drained in ${measured.drainMs} ms`,
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
    // A fixed phase at the fallback, from a round before Parley measured its maximum, is not compared with
    // the others at half of it.
    const unlike = (r: ScenarioResult) =>
      r.settings.mode === "fixed" && half !== undefined && r.settings.rate !== half
        ? `a round at ${String(r.settings.rate)} msg/s (the fallback: Parley had measured no maximum yet)`
        : undefined;
    results.push(...rows.best(byMode, unlike));
  }
  return results;
}
