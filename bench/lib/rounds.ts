// Rounds: a scenario measures every target, then every target again (A B C D A B C D), and keeps each
// target's better window. One window of a few seconds on a shared 2-core machine can meet a bad moment
// (the same phase gave 523,000 and 1,074,000 deliveries/s half an hour apart, bench/LIMITS-LOG.md);
// the targets in turn, the same number of times each, give every one the same chances.

import { envInt } from "./env.ts";
import type { ScenarioResult } from "./types.ts";

/** Rounds per scenario: BENCH_ROUNDS, or 2 in a full run and 1 in a quick one. */
export const roundsFor = (quick: boolean): number => envInt("BENCH_ROUNDS", quick ? 1 : 2, 1);

const fmt = (n: number | undefined, digits: number) =>
  n === undefined ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: digits });

/**
 * One row of a target's phase from its rounds: at a maximum rate (`by` "throughput") the most deliveries/s,
 * at a set rate (`by` "p99") the lowest p99, and a row that failed only if every round failed. With more
 * than one round the row says so in its settings and lists every round's figure in a note.
 */
export function bestOfRounds(rows: ScenarioResult[], by: "throughput" | "p99"): ScenarioResult {
  const first = rows[0];
  if (!first) throw new Error("bestOfRounds: no rows");
  if (rows.length === 1) return first;
  const measured = rows.filter((r) => r.metrics.deliveries_per_s !== undefined);
  const score = (r: ScenarioResult) =>
    by === "throughput" ? (r.metrics.deliveries_per_s ?? 0) : -(r.latency?.p99 ?? Number.POSITIVE_INFINITY);
  const best = measured.reduce<ScenarioResult | undefined>(
    (a, r) => (a && score(a) >= score(r) ? a : r),
    undefined,
  );
  const figure = (r: ScenarioResult) => figureOf(r, by);
  const chosen = best ?? (rows.at(-1) as ScenarioResult);
  const note =
    `best of ${rows.length} rounds (${by === "throughput" ? "most deliveries/s" : "lowest p99"}): ` +
    rows.map((r) => `${figure(r)}${r === chosen ? " (this one)" : ""}`).join(", ");
  return {
    ...chosen,
    settings: { ...chosen.settings, rounds: rows.length },
    notes: [...(chosen.notes ?? []), note],
  };
}

/** A round's figure in a note: what its phase is judged by, or "failed". */
const figureOf = (r: ScenarioResult, by: "throughput" | "p99") =>
  r.metrics.deliveries_per_s === undefined
    ? "failed"
    : by === "throughput"
      ? `${fmt(r.metrics.deliveries_per_s, 0)}/s`
      : `p99 ${fmt(r.latency?.p99, 2)} ms`;

/** A maximum rate is judged by its deliveries/s, a set rate by its p99. */
export const byMode = (mode: string): "throughput" | "p99" => (mode === "max" ? "throughput" : "p99");

const failed = (r: ScenarioResult) => r.notes?.some((n) => n.startsWith("failed")) ?? false;

/** Rows gathered over rounds, by target and mode, in the order they were first measured. */
export class RoundRows {
  private rows = new Map<string, ScenarioResult[]>();

  add(row: ScenarioResult) {
    const key = `${row.scenario}\u0000${row.target}\u0000${String(row.settings.mode ?? "")}`;
    this.rows.set(key, [...(this.rows.get(key) ?? []), row]);
  }

  /**
   * Each target's phase once: `by(mode)` says how a mode's best is chosen (by default the most deliveries/s
   * for "max", the lowest p99 for a set rate). A round that failed before its phases (a row with no mode)
   * is a note on the target's rows from the other rounds, when there are any. `unlike` names why a row was
   * measured unlike the others' (at another rate): such a round does not compete with the target's
   * rounds that were not, and a note gives it with its figure; a target with none of those keeps its
   * best unlike one, whose settings say how it was measured.
   */
  best(
    by: (mode: string) => "throughput" | "p99" = byMode,
    unlike: (row: ScenarioResult) => string | undefined = () => undefined,
  ): ScenarioResult[] {
    const groups = [...this.rows.values()];
    const measured = new Set(
      groups.filter((g) => g.some((r) => r.settings.mode !== undefined)).map((g) => g[0]?.target),
    );
    const failures = new Map<string, string[]>();
    const out: ScenarioResult[] = [];
    for (const rows of groups) {
      const first = rows[0] as ScenarioResult;
      if (first.settings.mode === undefined && rows.every(failed) && measured.has(first.target)) {
        const notes = rows.flatMap((r) => (r.notes ?? []).map((n) => `a round ${n}`));
        failures.set(first.target, [...(failures.get(first.target) ?? []), ...notes]);
        continue;
      }
      const judge = by(String(first.settings.mode ?? ""));
      const like = rows.filter((r) => unlike(r) === undefined);
      const kept = like.length ? like : rows;
      const best = bestOfRounds(kept, judge);
      const aside = rows
        .filter((r) => !kept.includes(r))
        .map((r) => `${unlike(r)}: ${figureOf(r, judge)}, not compared`);
      out.push(aside.length ? { ...best, notes: [...(best.notes ?? []), ...aside] } : best);
    }
    return out.map((r) => {
      const notes = failures.get(r.target);
      return notes ? { ...r, notes: [...(r.notes ?? []), ...notes] } : r;
    });
  }
}
