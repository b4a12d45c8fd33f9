// The fanout scenario compares every target's p99 at one rate, half of Parley's maximum: when Parley fails in
// a round, the targets after it in that round run at the fallback rate, and those rounds must not stand for
// them beside Parley's at half of its maximum (bench/scenarios/fanout.ts). Short windows, two rounds, the
// ceiling as a stand-in for Parley (the scenario knows Parley by its name).

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startTarget, type TargetName } from "../../bench/lib/targets.ts";
import type { PhaseResult } from "../../bench/loadgen/run.ts";
import { FALLBACK_RATE, fanoutOf, fixedRate, halfOfMax } from "../../bench/scenarios/fanout.ts";

const saved = { rounds: process.env.BENCH_ROUNDS, measure: process.env.BENCH_MEASURE_MS };
beforeAll(() => {
  process.env.BENCH_ROUNDS = "2";
  process.env.BENCH_MEASURE_MS = "300";
});
afterAll(() => {
  for (const [name, value] of [
    ["BENCH_ROUNDS", saved.rounds],
    ["BENCH_MEASURE_MS", saved.measure],
  ] as const)
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
});

describe("the fixed phase's rate", () => {
  it("is half of what Parley's max phase sent, none when that phase delivered nothing, and says which", () => {
    const max = (sentPerSec: number, received: number) => ({ sentPerSec, received }) as PhaseResult;
    expect(halfOfMax(max(5001, 90_000))).toBe(2501);
    expect(halfOfMax(max(1, 10))).toBe(1);
    // Sent into a server that relayed nothing: no maximum to halve.
    expect(halfOfMax(max(640, 0))).toBeUndefined();
    expect(fixedRate(2501)).toEqual({ rate: 2501, rate_basis: "half_parley_max" });
    expect(fixedRate(undefined)).toEqual({ rate: FALLBACK_RATE, rate_basis: "fallback" });
  });
});

describe("the fanout scenario over rounds", () => {
  it("compares a target's fixed phase at Parley's half rate, not at the fallback of a round Parley failed", async () => {
    let parleyStarts = 0;
    // "parley" fails to start in round 1 and is the ceiling in round 2.
    const start = (name: TargetName) => {
      if (name !== "parley") return startTarget(name);
      return ++parleyStarts === 1
        ? Promise.reject(new Error("parley start: process exited"))
        : startTarget("bare-bun");
    };
    const rows = await fanoutOf(["parley", "bare-bun"], { quick: true, log: () => {} }, start);
    const fixed = (target: string) => rows.find((r) => r.target === target && r.settings.mode === "fixed");
    const parley = fixed("parley");
    const ceiling = fixed("bare-bun");
    expect(parley?.settings.rate_basis).toBe("half_parley_max");
    expect(parley?.settings.rate).not.toBe(FALLBACK_RATE);
    expect(parley?.notes).toContain("a round failed: Error: parley start: process exited");
    // The ceiling's row is its round at Parley's half rate; its round at the fallback is named, not used.
    expect(ceiling?.settings).toMatchObject({ rate: parley?.settings.rate, rate_basis: "half_parley_max" });
    expect(ceiling?.notes?.some((n) => n.startsWith(`a round at ${FALLBACK_RATE} msg/s (the fallback`))).toBe(
      true,
    );
    expect(ceiling?.notes?.some((n) => n.endsWith("not compared"))).toBe(true);
  }, 90_000);
});
