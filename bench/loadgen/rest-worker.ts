// One of the rest scenario's generator processes: `concurrency` closed loops of one operation against one
// target for `seconds`, started when the scenario says go, so that every process measures the same window.
//
// argv[2]: {plan, op, seconds, concurrency, seed, first}  (first: the index of this process's first loop)
// stdout:  {"ready": true}, then after {"go": true} on stdin
//          {"ok", "errors", "firstError", "histogram", "cpu_s", "wall_s"}

import { Histogram } from "../lib/histogram.ts";
import { type RestOp, type RestPlan, restOp } from "./rest-ops.ts";

/** A safety bound on every loop besides its deadline. */
const MAX_OPS_PER_LOOP = 1_000_000;

const config = JSON.parse(process.argv[2] ?? "{}") as {
  plan: RestPlan;
  op: RestOp;
  seconds: number;
  concurrency: number;
  seed: number;
  first: number;
};
if (!config.plan?.url || !(config.seconds > 0) || !(config.concurrency > 0))
  throw new Error(`rest worker: bad config ${process.argv[2]}`);
const op = restOp(config.plan, config.op, config.seed);

process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of console) if (line.trim() && (JSON.parse(line) as { go?: boolean }).go) break;

const histogram = new Histogram();
let ok = 0;
let errors = 0;
let firstError: string | undefined;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const deadline = t0 + config.seconds * 1000;
const loop = async (w: number) => {
  for (let n = 0; n < MAX_OPS_PER_LOOP && performance.now() < deadline; n++) {
    const start = performance.now();
    try {
      await op(w);
      histogram.record(performance.now() - start);
      ok++;
    } catch (err) {
      errors++;
      firstError ??= err instanceof Error ? err.message : String(err);
    }
  }
};
await Promise.all(Array.from({ length: config.concurrency }, (_, i) => loop(config.first + i)));
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({
    ok,
    errors,
    firstError,
    histogram: histogram.toJSON(),
    cpu_s: (cpu.user + cpu.system) / 1e6,
    wall_s: (performance.now() - t0) / 1000,
  })}\n`,
);
process.exit(0);
