// The suite's command line and the environment variables that steer it (bench/README.md), checked before
// anything runs: a typo must stop the run at once with one line saying what is wrong, not after minutes of
// other scenarios, nor as a stack trace.

import { parseArgs } from "node:util";
import { envInt } from "./env.ts";
import { pickTargets } from "./target-names.ts";

/** Every scenario of the suite, in the order it runs them. */
export const SCENARIOS = ["fanout", "cross-node", "dms", "history", "rest", "resume", "connections"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const USAGE =
  "usage: bun run bench/index.ts [--quick] [--only <scenario>[,<scenario>…]] | --render\n" +
  `  scenarios: ${SCENARIOS.join(", ")}\n` +
  "  environment: BENCH_TARGETS, BENCH_MEASURE_MS, BENCH_ROUNDS, BENCH_RESUME_GENERATORS, BENCH_REDIS_URL, " +
  "BENCH_PROFILE_DIR (bench/README.md)";

/** Bad input: the suite prints its message and the usage, and exits 2. */
export class UsageError extends Error {}

export interface SuiteOptions {
  quick: boolean;
  render: boolean;
  /** The scenarios --only names, or undefined for all of them. */
  only?: ScenarioName[];
}

const list = (raw: string) =>
  raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** The suite's options from `argv` (after the script) and `env`; throws a UsageError on anything wrong. */
export function suiteOptions(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): SuiteOptions {
  let values: { quick?: boolean; render?: boolean; only?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: "boolean", default: false },
        only: { type: "string" },
        render: { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  let only: ScenarioName[] | undefined;
  if (values.only !== undefined) {
    const names = list(values.only);
    const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
    if (unknown.length)
      throw new UsageError(
        `--only: unknown scenario(s) ${unknown.join(", ")}; expected ${SCENARIOS.join(", ")}`,
      );
    if (!names.length) throw new UsageError(`--only: no scenario named; expected ${SCENARIOS.join(", ")}`);
    only = names as ScenarioName[];
  }
  const check = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
  };
  check(() => pickTargets(env.BENCH_TARGETS));
  // The same bounds the scenarios apply when they read them (loadgen/run.ts, lib/rounds.ts, scenarios/storm.ts).
  check(() => envInt("BENCH_MEASURE_MS", 0, 100, env));
  check(() => envInt("BENCH_ROUNDS", 0, 1, env));
  check(() => envInt("BENCH_RESUME_GENERATORS", 0, 1, env));
  check(() => {
    const raw = env.BENCH_REDIS_URL;
    if (!raw) return;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error(`BENCH_REDIS_URL: not a URL: ${raw}`);
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:")
      throw new Error(`BENCH_REDIS_URL: expected redis://host:port, got ${raw}`);
  });
  return { quick: values.quick ?? false, render: values.render ?? false, ...(only ? { only } : {}) };
}
