// Rounds in the bench suite: each target measured in turn more than once, its better window kept, and every
// round's figure said, so that one bad moment of a shared machine does not make a verdict.

import { afterEach, describe, expect, it } from "bun:test";
import { bestOfRounds, RoundRows, roundsFor } from "../../bench/lib/rounds.ts";
import type { ScenarioResult } from "../../bench/lib/types.ts";

const row = (
  target: string,
  mode: string,
  deliveries: number,
  p99: number,
  notes?: string[],
): ScenarioResult => ({
  scenario: "fanout-100",
  target,
  settings: { mode, members: 100 },
  metrics: { deliveries_per_s: deliveries },
  latency: { count: 100, p50: p99 / 2, p90: p99 / 1.5, p99, p999: p99, max: p99 },
  ...(notes ? { notes } : {}),
});
const failure = (target: string): ScenarioResult => ({
  scenario: "fanout-100",
  target,
  settings: { members: 100 },
  metrics: {},
  notes: ["failed: Error: target did not start"],
});

describe("bestOfRounds", () => {
  it("keeps the most deliveries/s at the maximum rate and lists every round", () => {
    const best = bestOfRounds(
      [row("parley", "max", 523_167, 2000), row("parley", "max", 1_074_424, 1200)],
      "throughput",
    );
    expect(best.metrics.deliveries_per_s).toBe(1_074_424);
    expect(best.settings).toMatchObject({ mode: "max", rounds: 2 });
    expect(best.notes).toEqual(["best of 2 rounds (most deliveries/s): 523,167/s, 1,074,424/s (this one)"]);
  });

  it("keeps the lowest p99 at a set rate, and the row's own notes", () => {
    const best = bestOfRounds(
      [row("parley", "fixed", 400_000, 12.61, ["1 error frames"]), row("parley", "fixed", 400_000, 8.2)],
      "p99",
    );
    expect(best.latency?.p99).toBe(8.2);
    expect(best.notes).toEqual(["best of 2 rounds (lowest p99): p99 12.61 ms, p99 8.2 ms (this one)"]);
    const first = bestOfRounds([row("x", "fixed", 1, 3), row("x", "fixed", 1, 5)], "p99");
    expect(first.latency?.p99).toBe(3);
    expect(first.notes).toEqual(["best of 2 rounds (lowest p99): p99 3 ms (this one), p99 5 ms"]);
  });

  it("passes one round through untouched, fails only when every round failed, and refuses no rows", () => {
    const one = row("parley", "max", 5, 1);
    expect(bestOfRounds([one], "throughput")).toBe(one);
    const both = bestOfRounds([failure("parley"), failure("parley")], "throughput");
    expect(both.metrics).toEqual({});
    expect(both.notes?.at(-1)).toBe("best of 2 rounds (most deliveries/s): failed, failed (this one)");
    expect(() => bestOfRounds([], "p99")).toThrow("no rows");
  });
});

describe("RoundRows", () => {
  it("gives each target's phase once, in the order first measured, and a failed round as a note", () => {
    const rows = new RoundRows();
    rows.add(row("parley", "max", 500, 10));
    rows.add(row("parley", "fixed", 250, 9));
    rows.add(failure("bare-bun"));
    rows.add(row("parley", "max", 700, 12));
    rows.add(row("parley", "fixed", 250, 11));
    rows.add(row("bare-bun", "max", 900, 5));
    rows.add(row("bare-bun", "fixed", 250, 3));
    rows.add(failure("node-ws"));
    rows.add(failure("node-ws"));
    const out = rows.best();
    expect(out.map((r) => `${r.target} ${String(r.settings.mode)}`)).toEqual([
      "parley max",
      "parley fixed",
      "bare-bun max",
      "bare-bun fixed",
      "node-ws undefined",
    ]);
    expect(out[0]?.metrics.deliveries_per_s).toBe(700);
    expect(out[1]?.latency?.p99).toBe(9);
    // bare-bun's first round failed; its one measured round stands, with the failure noted.
    expect(out[2]?.metrics.deliveries_per_s).toBe(900);
    expect(out[2]?.notes).toEqual(["a round failed: Error: target did not start"]);
    expect(out[3]?.notes).toEqual(["a round failed: Error: target did not start"]);
    // node-ws failed in both rounds: one failed row says so.
    expect(out[4]?.notes?.[0]).toStartWith("failed:");
  });
});

describe("RoundRows with rounds measured unlike the others", () => {
  const at = (target: string, rate: number, p99: number): ScenarioResult => ({
    ...row(target, "fixed", rate * 99, p99),
    settings: { mode: "fixed", members: 100, rate },
  });
  const unlike = (r: ScenarioResult) => (r.settings.rate === 100 ? "a round at 100 msg/s" : undefined);

  it("keeps a target's best of the rounds at the common rate, and names the others with their figures", () => {
    const rows = new RoundRows();
    // Round 1 at the fallback (Parley had failed), a far lower p99 than at half of Parley's max in round 2.
    rows.add(at("bare-bun", 100, 0.9));
    rows.add(at("parley", 2000, 8));
    rows.add(at("bare-bun", 2000, 4));
    const [bare, parley] = rows.best(undefined, unlike);
    expect(bare?.settings.rate).toBe(2000);
    expect(bare?.latency?.p99).toBe(4);
    expect(bare?.notes).toEqual(["a round at 100 msg/s: p99 0.9 ms, not compared"]);
    expect(parley?.notes).toBeUndefined();
  });

  it("keeps the best unlike round of a target that has no other, as measured", () => {
    const rows = new RoundRows();
    rows.add(at("node-ws", 100, 2));
    rows.add(at("node-ws", 100, 3));
    const [ws] = rows.best(undefined, unlike);
    expect(ws?.settings.rate).toBe(100);
    expect(ws?.latency?.p99).toBe(2);
    expect(ws?.notes).toEqual(["best of 2 rounds (lowest p99): p99 2 ms (this one), p99 3 ms"]);
  });
});

describe("roundsFor", () => {
  const saved = process.env.BENCH_ROUNDS;
  afterEach(() => {
    if (saved === undefined) delete process.env.BENCH_ROUNDS;
    else process.env.BENCH_ROUNDS = saved;
  });

  it("is 2 in a full run and 1 in a quick one, BENCH_ROUNDS when set, and refuses anything but a count", () => {
    delete process.env.BENCH_ROUNDS;
    expect(roundsFor(false)).toBe(2);
    expect(roundsFor(true)).toBe(1);
    process.env.BENCH_ROUNDS = "3";
    expect(roundsFor(true)).toBe(3);
    for (const bad of ["0", "1.5", "two"]) {
      process.env.BENCH_ROUNDS = bad;
      expect(() => roundsFor(false)).toThrow("BENCH_ROUNDS");
    }
  });
});
