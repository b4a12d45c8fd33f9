// The rest and resume scenarios alone, against Parley and their peers (rest: the REST ceiling and Node.js
// with Express; resume: Socket.IO), as the suite runs them: prints their tables and writes
// bench/results/rest-resume-<UTC time>.json and rest-resume-latest.json (a partial run, `--only` or
// BENCH_TARGETS: a temp file only). `--quick`; `--only rest|resume`. Exits 1 when a scenario or target failed.

import { existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { table } from "./lib/format.ts";
import { optionsOrExit, REST_RESUME_USAGE, restResumeOptions } from "./lib/options.ts";
import { stopChildrenOnSignal } from "./lib/proc.ts";
import { runFailures } from "./lib/render.ts";
import { machine, writeResults } from "./lib/report.ts";
import type { Scenario, ScenarioResult } from "./lib/types.ts";

// Checked before the scenarios' modules load (lib/targets.ts reads BENCH_TARGETS as it loads): bad input stops
// here with one line, the usage and exit code 2, as the suite's does (lib/options.ts).
const args = optionsOrExit(() => restResumeOptions(Bun.argv.slice(2)), REST_RESUME_USAGE);
const quick = args.quick;
const all: Array<[string, Scenario]> = [
  ["rest", (await import("./scenarios/rest.ts")).rest],
  ["resume", (await import("./scenarios/resume.ts")).resume],
];
const only: readonly string[] | undefined = args.only;

const started = Date.now();
const log = (line: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
// Ctrl-C or a SIGTERM stops the servers and generators too, and removes their temp dirs (lib/proc.ts).
stopChildrenOnSignal(log);
const results: ScenarioResult[] = [];
const errors: string[] = [];
for (const [name, scenario] of all) {
  if (only && !only.includes(name)) continue;
  try {
    results.push(...(await scenario({ quick, log })));
  } catch (err) {
    log(`${name}: FAILED ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    errors.push(`${name}: ${err}`);
  }
}

const fmt = (n: number | undefined) => (n === undefined ? "" : String(n));
const out: string[] = [];
const restRows = results.filter((r) => r.scenario === "rest");
if (restRows.length) {
  out.push(
    "### rest (Parley, one process, LOG_LEVEL=info; the REST ceiling; Node.js with Express)",
    "",
    table(
      [
        "operation",
        "target",
        "ops/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "server CPU %",
        "bench CPU %",
      ],
      restRows.map((r) => [
        String(r.settings.operation),
        r.target,
        fmt(r.metrics.ops_per_s),
        fmt(r.metrics.errors),
        fmt(r.latency?.p50),
        fmt(r.latency?.p90),
        fmt(r.latency?.p99),
        fmt(r.latency?.p999),
        fmt(r.latency?.max),
        fmt(r.metrics.server_cpu_pct),
        fmt(r.generator_cpu_pct),
      ]),
    ),
    "",
  );
}
for (const r of results.filter((x) => x.scenario === "resume")) {
  out.push(
    `### resume storm: ${r.settings.clients} clients in ${r.settings.groups} groups of ${r.settings.group_size}`,
    "",
    table(
      ["metric", "value"],
      [
        ...Object.entries(r.metrics).map(([k, v]) => [k, String(v)]),
        ["generator_cpu_pct", fmt(r.generator_cpu_pct)],
        ...(["p50", "p90", "p99", "p999", "max"] as const).map((p) => [
          `caught-up time per client ${p} ms`,
          fmt(r.latency?.[p]),
        ]),
      ],
    ),
    "",
  );
}
for (const r of results)
  for (const n of r.notes ?? [])
    out.push(`- ${r.scenario}/${r.target}/${String(r.settings.operation ?? "")}: ${n}`);
for (const e of errors) out.push(`- ERROR ${e}`);
console.log(out.join("\n"));

const data = {
  benchmark: "rest-resume",
  date: new Date().toISOString(),
  quick,
  machine: machine(),
  seconds: (Date.now() - started) / 1000,
  results,
  errors,
};
if (only || process.env.BENCH_TARGETS) {
  // A partial run (one scenario, or some targets) must not replace the published rest-resume-latest.json.
  const partial = join(tmpdir(), `parley-rest-resume-partial-${Date.now()}.json`);
  writeFileSync(partial, `${JSON.stringify(data, null, 2)}\n`);
  log(`partial run: wrote ${partial} only (bench/results/rest-resume-latest.json is left as it was)`);
} else {
  const paths = writeResults("rest-resume", data);
  // JSON.stringify's layout is not Biome's; formatting the files keeps `biome check` clean (best effort).
  const biome = join(import.meta.dir, "..", "node_modules", ".bin", "biome");
  if (existsSync(biome))
    Bun.spawnSync([biome, "format", "--write", ...paths], { stdout: "ignore", stderr: "ignore" });
  log(`wrote ${paths.join(", ")}`);
}
// A scenario or target that failed leaves its figures out: the exit code says so, as the suite's does.
const failures = runFailures({ results, errors });
if (failures.length) {
  log(`${failures.length} failed (exit code 1):\n${failures.map((f) => `  - ${f}`).join("\n")}`);
  process.exit(1);
}
process.exit(0);
