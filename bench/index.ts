// The bench suite: runs every scenario (fanout, cross-node, dms, history, and rest/resume/connections when
// present) against Parley, the bare Bun ceiling and the peers, then writes bench/results/<date>.json,
// latest.json, latest.svg and bench/RESULTS.md. `--quick` is the few-minute subset; `--only fanout,dms`
// picks scenarios.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { gauge } from "./lib/gauge.ts";
import { optionsOrExit, suiteOptions, USAGE } from "./lib/options.ts";
import { stopChildrenOnSignal } from "./lib/proc.ts";
import { markdown, type Run, runFailures } from "./lib/render.ts";
import { codeVersion, limitsText, packageVersions, RESULTS_DIR, rendered } from "./lib/saved.ts";
import type { Scenario, ScenarioResult } from "./lib/types.ts";

// The command line and the BENCH_* variables are checked before any scenario's module is loaded (one of
// them reads BENCH_TARGETS as it loads): bad input stops here, with one line and exit code 2.
const args = optionsOrExit(() => suiteOptions(Bun.argv.slice(2)), USAGE);
const quick = args.quick;

if (args.render) {
  // --render: RESULTS.md and latest.svg again from latest.json (after editing LIMITS.md), without a run.
  const latest = join(RESULTS_DIR, "latest.json");
  if (!existsSync(latest)) {
    console.error("--render: no bench/results/latest.json yet; run `npm run bench` (or bench:quick) first");
    process.exit(2);
  }
  const out = rendered(JSON.parse(readFileSync(latest, "utf8")) as Run);
  writeFileSync(join(RESULTS_DIR, "latest.svg"), out.svg);
  writeFileSync(join(import.meta.dir, "RESULTS.md"), out.markdown);
  console.error("wrote bench/RESULTS.md and bench/results/latest.svg from bench/results/latest.json");
  process.exit(0);
}

/** Scenarios in their own files join when their file exists (export `rest`/`resume`/`connections` or default). */
async function optional(name: string): Promise<Scenario | undefined> {
  const file = join(import.meta.dir, "scenarios", `${name}.ts`);
  if (!existsSync(file)) return undefined;
  const mod = (await import(file)) as Record<string, unknown>;
  const fn = mod[name] ?? mod.default;
  if (typeof fn !== "function") throw new Error(`bench/scenarios/${name}.ts exports no "${name}" scenario`);
  return fn as Scenario;
}

const scenarios: Array<[string, Scenario | undefined]> = [
  ["fanout", (await import("./scenarios/fanout.ts")).fanout],
  ["cross-node", (await import("./scenarios/cross-node.ts")).crossNode],
  ["dms", (await import("./scenarios/dms.ts")).dms],
  ["history", (await import("./scenarios/history.ts")).history],
  ["rest", await optional("rest")],
  ["resume", await optional("resume")],
  ["connections", await optional("connections")],
];
const only: readonly string[] | undefined = args.only;

const started = Date.now();
const log = (line: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
const gauged = async (when: string) => {
  const g = await gauge();
  log(
    `machine gauge at the ${when}: decode ${g.decode_us} µs, fsync p50 ${g.fsync_p50_ms} ms, p99 ${g.fsync_p99_ms} ms, ` +
      `loopback round trip ${g.loopback_rtt_us} µs, argon2id ${g.argon2_ms} ms`,
  );
  return g;
};
// Ctrl-C or a SIGTERM (a cancelled CI job, `timeout`) stops the servers and generators too, and removes
// their temp dirs, before the suite exits (lib/proc.ts).
stopChildrenOnSignal(log);
/** Parley's commit, read before anything runs: the code this run measures. */
const code = codeVersion();
log(`measuring Parley at ${code}`);
const gaugeStart = await gauged("start");
const results: ScenarioResult[] = [];
const errors: string[] = [];
for (const [name, run] of scenarios) {
  if (only && !only.includes(name)) continue;
  if (!run) {
    log(`${name}: skipped (bench/scenarios/${name}.ts not there yet)`);
    errors.push(`${name}: not run (bench/scenarios/${name}.ts does not exist yet)`);
    continue;
  }
  try {
    results.push(...(await run({ quick, log })));
  } catch (err) {
    log(`${name}: FAILED ${err}`);
    errors.push(`${name}: ${err}`);
  }
}

const nodeVersion = (() => {
  try {
    return execFileSync("node", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "missing";
  }
})();
const gaugeEnd = await gauged("end");
const date = new Date();
const run: Run = {
  date: date.toISOString(),
  quick,
  machine: {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${process.platform} ${release()} ${process.arch}`,
    bun: Bun.version,
    node: nodeVersion,
    commit: code,
    packages: packageVersions(),
    gauge: { start: gaugeStart, end: gaugeEnd },
  },
  results,
  errors,
};
const dir = RESULTS_DIR;
mkdirSync(dir, { recursive: true });
const stamp = date
  .toISOString()
  .replace(/\.\d+Z$/, "Z")
  .replaceAll(":", "-");
const json = `${JSON.stringify({ ...run, seconds: (Date.now() - started) / 1000 }, null, 2)}\n`;
if (only || process.env.BENCH_TARGETS) {
  // A partial run (some scenarios or targets) must not replace the suite's published results.
  const partial = join(tmpdir(), `parley-bench-partial-${stamp}.json`);
  writeFileSync(partial, json);
  console.log(markdown(run, limitsText()));
  log(`partial run: wrote ${partial} only (bench/RESULTS.md and latest.* are left as they were)`);
} else {
  writeFileSync(join(dir, `${stamp}.json`), json);
  writeFileSync(join(dir, "latest.json"), json);
  const out = rendered(run);
  writeFileSync(join(dir, "latest.svg"), out.svg);
  writeFileSync(join(import.meta.dir, "RESULTS.md"), out.markdown);
  log(`wrote bench/results/${stamp}.json, latest.json, latest.svg and bench/RESULTS.md`);
}
// A scenario or target that failed leaves its figures out: the files say so, and the exit code too.
const failures = runFailures(run);
if (failures.length) {
  log(`${failures.length} failed (exit code 1):\n${failures.map((f) => `  - ${f}`).join("\n")}`);
  process.exit(1);
}
process.exit(0);
