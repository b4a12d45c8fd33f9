// The command lines of the suite (bench/index.ts) and of bench/run-rest-resume.ts, and the environment
// variables that steer them (bench/README.md), checked before anything runs: a typo must stop the run at
// once with one line saying what is wrong, not after minutes of other scenarios, nor as a stack trace.

import { parseArgs } from "node:util";
import { envInt } from "./env.ts";
import { pickTargets } from "./target-names.ts";

/** Every scenario of the suite, in the order it runs them. */
export const SCENARIOS = ["fanout", "cross-node", "dms", "history", "rest", "resume", "connections"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
/** The scenarios bench/run-rest-resume.ts runs on their own. */
export const REST_RESUME_SCENARIOS = ["rest", "resume"] as const satisfies readonly ScenarioName[];

const ENVIRONMENT =
  "  environment: BENCH_TARGETS, BENCH_MEASURE_MS, BENCH_ROUNDS, BENCH_RESUME_GENERATORS, BENCH_REDIS_URL, " +
  "BENCH_PROFILE_DIR (bench/README.md)";

export const USAGE =
  "usage: bun run bench/index.ts [--quick] [--only <scenario>[,<scenario>…]] | --render\n" +
  `  scenarios: ${SCENARIOS.join(", ")}\n${ENVIRONMENT}`;

export const REST_RESUME_USAGE =
  "usage: bun run bench/run-rest-resume.ts [--quick] [--only <scenario>[,<scenario>…]]\n" +
  `  scenarios: ${REST_RESUME_SCENARIOS.join(", ")}\n${ENVIRONMENT}`;

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
  return scriptOptions(argv, env, SCENARIOS, true);
}

/**
 * bench/run-rest-resume.ts's options: `--quick` and `--only` among the rest and resume scenarios (no
 * `--render`), with the same checks of the BENCH_* variables as the suite's.
 */
export function restResumeOptions(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): Omit<SuiteOptions, "render"> {
  const { render: _, ...options } = scriptOptions(argv, env, REST_RESUME_SCENARIOS, false);
  return options;
}

/**
 * `parse()` (one of the functions above), or, on a UsageError, its message and `usage` on stderr and exit
 * code 2: a script calls it before it loads any scenario's module (one of them reads BENCH_TARGETS as it
 * loads), so that bad input stops it with one line, not a stack trace.
 */
export function optionsOrExit<T>(parse: () => T, usage: string): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench: ${err.message}\n${usage}`);
    process.exit(2);
  }
}

/** `--quick`, `--only` among `scenarios`, `--render` where `render` allows it, and the BENCH_* variables. */
function scriptOptions(
  argv: string[],
  env: Record<string, string | undefined>,
  scenarios: readonly ScenarioName[],
  render: boolean,
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
  // In parseArgs's words, as for any option the script does not take.
  if (values.render && !render) throw new UsageError("Unknown option '--render'");
  let only: ScenarioName[] | undefined;
  if (values.only !== undefined) {
    const names = list(values.only);
    const unknown = names.filter((n) => !(scenarios as readonly string[]).includes(n));
    if (unknown.length)
      throw new UsageError(
        `--only: unknown scenario(s) ${unknown.join(", ")}; expected ${scenarios.join(", ")}`,
      );
    if (!names.length) throw new UsageError(`--only: no scenario named; expected ${scenarios.join(", ")}`);
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
