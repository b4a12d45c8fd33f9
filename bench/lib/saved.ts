// What the suite has saved under bench/: the runs in bench/results, the hand-written LIMITS.md, and
// RESULTS.md and latest.svg as they are made from them (after a run, and by `--render`).

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { markdown, type Run, svg } from "./render.ts";

export const BENCH_DIR = join(import.meta.dir, "..");
export const RESULTS_DIR = join(BENCH_DIR, "results");

/** A suite run's file name: its UTC time (other benchmarks' files carry their name first). */
const RUN_FILE = /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/;

/** The hand-written part of RESULTS.md: what limits Parley against each aim (bench/LIMITS.md). */
export function limitsText(dir = BENCH_DIR): string | undefined {
  const file = join(dir, "LIMITS.md");
  return existsSync(file) ? readFileSync(file, "utf8").replace(/^<!--[\s\S]*?-->\n*/, "") : undefined;
}

/** Every suite run saved in `dir` (`<UTC time>.json`), for the table of every full run's verdicts. */
export function savedRuns(dir = RESULTS_DIR): Run[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => RUN_FILE.test(f))
    .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as Run);
}

/** RESULTS.md and latest.svg for `run`, with LIMITS.md and every saved run. */
export function rendered(run: Run, dir = BENCH_DIR): { markdown: string; svg: string } {
  return { markdown: markdown(run, limitsText(dir), savedRuns(join(dir, "results"))), svg: svg(run) };
}

/**
 * The code a run measures: the commit checked out where `dir` is (short hash), "+changes" when a tracked
 * file differs from it (bench/results aside: a run writes there; files git does not track, a linked
 * node_modules say, do not count), "unknown" outside a git checkout. Read when a run starts.
 */
export function codeVersion(dir = BENCH_DIR): string {
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", dir, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  try {
    const commit = git("rev-parse", "--short=10", "HEAD");
    const changed = git(
      "status",
      "--porcelain",
      "--untracked-files=no",
      "--",
      ":(top)",
      ":(top,exclude)bench/results",
    )
      .split("\n")
      .some((line) => line.trim() !== "");
    return changed ? `${commit}+changes` : commit;
  } catch {
    return "unknown";
  }
}

/** The peers' and clients' packages a run measures with, and their installed versions. */
export const PEER_PACKAGES = [
  "socket.io",
  "socket.io-client",
  "@socket.io/redis-adapter",
  "ws",
  "express",
  "argon2",
  "msgpackr",
  "ioredis",
  "elysia",
] as const;

/**
 * The installed version of each of PEER_PACKAGES (from its package.json under node_modules), "missing"
 * for one that is not installed. Recorded with each run: a peer's speed is its version's.
 */
export function packageVersions(root = join(BENCH_DIR, "..")): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PEER_PACKAGES) {
    try {
      const pkg = JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8"));
      out[name] = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      out[name] = "missing";
    }
  }
  return out;
}
