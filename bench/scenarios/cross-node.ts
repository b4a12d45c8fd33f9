// Cross-node: fanout across two server processes of each target joined through Redis. One conversation of 100
// members (and 1,000 in full mode): the sender (user 0) on node A, every other member on node B, so every
// counted delivery went through Redis. Max rate (a window of unseen messages), then open loop at half of
// Parley's max rate, as in fanout; each row gives both nodes' CPU and redis-server's.

import { randomBytes } from "node:crypto";
import { benchRedisUrl, checkRedis, redisServerPid } from "../lib/redis.ts";
import { ackProbe } from "../lib/server-metrics.ts";
import { startTarget, TARGETS, type Target } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import { failedResult, openLoad, type PhaseResult, toResult } from "../loadgen/run.ts";
import { fanoutPlan, fixedRate, halfOfMax, WINDOW } from "./fanout.ts";

const WORKERS = 2;
const NODE_A = 0;
const NODE_B = 1;

export const crossNode: Scenario = async ({ quick, log }) => {
  const redisUrl = benchRedisUrl();
  await checkRedis(redisUrl);
  const redisPid = redisServerPid(redisUrl);
  const redisNote = redisPid
    ? []
    : [`redis-server's CPU not measured: no local redis-server process found for ${redisUrl}`];
  // Channel prefixes unique to this run, target and size: no two targets' channels can meet.
  const runTag = randomBytes(4).toString("hex");
  const { sizes, timing } = fanoutPlan(quick);
  const results: ScenarioResult[] = [];
  for (const members of sizes) {
    const scenario = `cross-node-${members}`;
    /** Half of Parley's maximum (fanout.ts): every target's fixed phase at it, or all at the fallback. */
    let half: number | undefined;
    for (const name of TARGETS) {
      let target: Target | undefined;
      let load: Awaited<ReturnType<typeof openLoad>> | undefined;
      try {
        log(`${scenario}: ${name}: starting 2 nodes`);
        target = await startTarget(name, {
          nodes: 2,
          redisUrl,
          prefix: `parley-bench-${runTag}-${name}-${members}`,
        });
        const room0 = Array.from({ length: members }, (_, i) => i);
        const prepared = await target.prepare(members, [room0], (u) => (u === 0 ? NODE_A : NODE_B));
        // As in fanout: the sender and its probe (user WORKERS, on node B) share worker 0.
        load = await openLoad(
          prepared,
          target.pids,
          WORKERS,
          (i) => (i === 0 ? 0 : i % WORKERS),
          redisPid ? { redis: redisPid } : {},
        );
        const probe = WORKERS;
        const room = prepared.roomIds[0] as string;
        const base = { members, receivers: members - 1, nodes: 2, workers: WORKERS, ...timing };
        const row = (settings: Record<string, unknown>, r: PhaseResult) => {
          const result = toResult(scenario, name, { ...base, ...settings }, r, {
            node_a_cpu_pct: r.serverCpuPcts[NODE_A] as number,
            node_b_cpu_pct: r.serverCpuPcts[NODE_B] as number,
            ...(r.otherCpuPct.redis !== undefined ? { redis_cpu_pct: r.otherCpuPct.redis } : {}),
          });
          const all = [...(result.notes ?? []), ...redisNote];
          return all.length ? { ...result, notes: all } : result;
        };

        // Node A's own arrival-to-ack times over each window (server-metrics.ts); the peers have none.
        const acks = target.scrapeMetrics && ackProbe(target.scrapeMetrics);
        const max = await load.phase([{ conn: 0, room, probe, window: WINDOW }], timing, acks);
        results.push(row({ mode: "max", window: WINDOW }, max));
        const p99 = max.received
          ? `, p99 ${max.hist.summary().p99} ms, drained in ${max.drainMs} ms (${max.late} late)`
          : "";
        log(`${scenario}: ${name}: max ${Math.round(max.deliveriesPerSec)} deliveries/s${p99}`);
        if (name === "parley") half = halfOfMax(max);

        const settings = fixedRate(half);
        const fixed = await load.phase([{ conn: 0, room, probe, rate: settings.rate }], timing, acks);
        // At the fallback (Parley's max phase failed or delivered nothing), rate_basis says so.
        results.push(row({ mode: "fixed", ...settings }, fixed));
        log(
          `${scenario}: ${name}: ${settings.rate} msg/s: ${Math.round(fixed.deliveriesPerSec)} deliveries/s`,
        );
      } catch (err) {
        log(`${scenario}: ${name}: FAILED ${err}`);
        results.push(failedResult(scenario, name, { members, nodes: 2 }, err));
      } finally {
        await load?.close();
        await target?.stop();
      }
    }
  }
  return results;
};
