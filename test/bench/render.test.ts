// The bench suite's own arithmetic: the latency histogram, the verdicts RESULTS.md gives on the aims, and the
// cross-node tables (each node's CPU and Redis's; a target that delivered nothing).

import { describe, expect, it } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gauge } from "../../bench/lib/gauge.ts";
import { Histogram } from "../../bench/lib/histogram.ts";
import { aimsAcrossRuns, markdown, RUNS_SHOWN, type Run, runFailures } from "../../bench/lib/render.ts";
import {
  BENCH_DIR,
  codeVersion,
  PEER_PACKAGES,
  packageVersions,
  RESULTS_DIR,
  rendered,
  savedRuns,
} from "../../bench/lib/saved.ts";
import { pickTargets } from "../../bench/lib/targets.ts";
import type { ScenarioResult } from "../../bench/lib/types.ts";
import { type PhaseResult, toResult } from "../../bench/loadgen/run.ts";

describe("histogram", () => {
  it("answers percentiles within 0.4% of the exact ones, and merges like one histogram", () => {
    const whole = new Histogram();
    const a = new Histogram();
    const b = new Histogram();
    // 1 µs .. 200 ms, in a scrambled order.
    for (let i = 1; i <= 200_000; i++) {
      const ms = ((i * 7919) % 200_000 || 200_000) / 1000;
      whole.record(ms);
      (i % 2 ? a : b).record(ms);
    }
    for (const [p, exact] of [
      [50, 100],
      [90, 180],
      [99, 198],
      [99.9, 199.8],
    ] as const) {
      expect(Math.abs(whole.percentile(p) - exact) / exact).toBeLessThan(0.004);
    }
    a.merge(Histogram.from(JSON.parse(JSON.stringify(b.toJSON()))));
    expect(a.summary()).toEqual(whole.summary());
    expect(whole.summary().max).toBe(200);
  });

  it("answers a percentile as its bucket's upper bound: never under the value, at most 1/128 (0.8%) over", () => {
    let worst = 0;
    for (let us = 1; us <= 3_000_000; us += us < 10_000 ? 1 : 97) {
      const h = new Histogram();
      h.record(us / 1000);
      h.record(10_000); // a larger max, so the answer is the bucket's bound rather than the max
      const over = (Math.round(h.percentile(50) * 1000) - us) / us;
      expect(over).toBeGreaterThanOrEqual(0);
      worst = Math.max(worst, over);
    }
    expect(worst).toBeLessThan(1 / 128);
    // bench/README.md once said "under 0.4%": a bucket is 1/128 of its power of two wide, not 1/256.
    expect(worst).toBeGreaterThan(0.0075);
  });

  it("counts negative latencies (clock skew) as 0 and answers 0 when empty", () => {
    const h = new Histogram();
    expect(h.percentile(99)).toBe(0);
    h.record(-3);
    expect(h.summary()).toMatchObject({ count: 1, p50: 0, max: 0 });
  });
});

function result(
  scenario: string,
  target: string,
  mode: string,
  deliveries: number,
  p99: number,
  rate?: number,
): ScenarioResult {
  return {
    scenario,
    target,
    settings: { mode, ...(rate ? { rate } : {}) },
    metrics: { deliveries_per_s: deliveries },
    latency: { count: 1000, p50: p99 / 2, p90: p99 / 1.5, p99, p999: p99 * 1.2, max: p99 * 1.5 },
  };
}

function run(parleyFanout: number, parleyP99: number, parleyDms: number): Run {
  return {
    date: "2026-11-29T00:00:00.000Z",
    quick: true,
    machine: { cores: 2, cpu: "test", memoryGiB: 1, os: "test", bun: "1", node: "1" },
    errors: [],
    results: [
      result("fanout-100", "parley", "max", parleyFanout, 10),
      result("fanout-100", "bare-bun", "max", 1000, 10),
      result("fanout-100", "node-ws", "max", 200, 10),
      result("fanout-100", "socketio", "max", 250, 10),
      result("fanout-100", "parley", "fixed", 500, parleyP99, 5),
      result("fanout-100", "bare-bun", "fixed", 500, 2, 5),
      result("dms-100", "parley", "max", parleyDms, 10),
      result("dms-100", "bare-bun", "max", 1000, 1),
    ],
  };
}

describe("RESULTS.md against the aims", () => {
  it("says MET at exactly the aims and NOT MET below them", () => {
    const met = markdown(run(600, 4, 350));
    expect(met).toContain("fanout-100 deliveries/s ≥ 60% of the ceiling: 0.60× of it, MET");
    expect(met).toContain("≥ 3× ws: 3.00×, MET; ≥ 3× Socket.IO: 2.40×, NOT MET");
    expect(met).toContain("(5 msg/s) ≤ 2× the ceiling's: 4.00 ms vs 2.00 ms (2.00×), MET");
    expect(met).toContain("dms-100 persisted messages/s ≥ 35% of the ceiling's echo rate: 0.35×, MET");
    const missed = markdown(run(590, 4.2, 340));
    expect(missed).toContain("0.59× of it, NOT MET");
    expect(missed).toContain("≥ 3× ws: 2.95×, NOT MET");
    expect(missed).toContain("(2.10×), NOT MET");
    expect(missed).toContain("echo rate: 0.34×, NOT MET");
  });

  it("says NOT MET, not n/a, when Parley was measured and delivered nothing", () => {
    const nothing = markdown(run(0, 4, 0));
    expect(nothing).toContain("fanout-100 deliveries/s ≥ 60% of the ceiling: 0.00× of it, NOT MET");
    expect(nothing).toContain("≥ 3× ws: 0.00×, NOT MET; ≥ 3× Socket.IO: 0.00×, NOT MET");
    expect(nothing).toContain("echo rate: 0.00×, NOT MET");
    // A target that failed (no figure at all) is still n/a.
    const failed = run(600, 4, 350);
    failed.results = failed.results.filter((r) => !(r.target === "parley" && r.settings.mode === "max"));
    expect(markdown(failed)).toContain("fanout-100 deliveries/s ≥ 60% of the ceiling: – of it, n/a");
  });

  it("compares fixed-rate p99s only at one rate: a ceiling measured at another is n/a, with the reason", () => {
    const apart = run(600, 4, 350);
    // Parley at half its max (5 msg/s), the ceiling's kept round at the fallback.
    const ceiling = apart.results.find((r) => r.target === "bare-bun" && r.settings.mode === "fixed");
    if (!ceiling) throw new Error("no fixed ceiling row");
    ceiling.settings = { mode: "fixed", rate: 100, rate_basis: "fallback" };
    const text = markdown(apart);
    expect(text).toContain(
      "- fanout-100 p99 at half Parley's max rate ≤ 2× the ceiling's: 4.00 ms vs 2.00 ms, " +
        "n/a: the ceiling measured at 100 msg/s, Parley at 5 msg/s",
    );
    expect(text).not.toContain("(2.00×), MET");
    // Its table gives the figures, no ratio, and says why.
    const table = text.slice(text.indexOf("### fanout-100 fixed\n"), text.indexOf("### dms-100"));
    expect(table).toMatch(/\| bare-bun +\|.*\| +n\/a \| +n\/a \|/);
    expect(table).toContain(
      "- bare-bun: no ratios to Parley (n/a): measured at 100 msg/s, Parley at 5 msg/s",
    );
    // Across runs, the cell is n/a and counts for neither.
    const full = { ...apart, quick: false };
    const across = aimsAcrossRuns([full]);
    expect(across).toMatch(/\| +n\/a \| +0\.35× ✓ \|\n/);
    expect(across).toMatch(/\| met in .*\| +0 of 0 \| +1 of 1 \|$/);
  });

  it("says n/a when Parley's own fixed phase ran at the fallback, not at half of its max", () => {
    const fallback = run(600, 4, 350);
    for (const r of fallback.results.filter((x) => x.settings.mode === "fixed"))
      r.settings = { mode: "fixed", rate: 100, rate_basis: "fallback" };
    const text = markdown(fallback);
    expect(text).toContain(
      "≤ 2× the ceiling's: 4.00 ms vs 2.00 ms, n/a: Parley's max phase gave no rate, so its fixed phase ran at the fallback 100 msg/s",
    );
    expect(text).toContain("Settings: rate 100 (the fallback: Parley's max phase gave no rate).");
    // The ceiling at the same rate as Parley: the table's ratios stand.
    expect(text).toMatch(/\| bare-bun +\|.*\| +1\.00× \| +2\.00× \|/);
  });

  it("says where the connections scenario stands against 100,000 held sockets, and n/a for a quick run", () => {
    const held = (n: number, processes: number): ScenarioResult => ({
      scenario: "connections",
      target: "parley",
      settings: { server_processes: processes },
      metrics: { connections_held: n, rss_per_conn_bytes: 3737.6 },
    });
    const full = { ...run(600, 4, 350), quick: false };
    full.results.push(held(100_000, 6));
    expect(markdown(full)).toContain(
      "- connections: authenticated idle sockets held ≥ 100,000: 100,000 (6 Parley processes on one port), 3.7 KiB of RSS each, MET",
    );
    full.results[full.results.length - 1] = held(99_999, 1);
    expect(markdown(full)).toContain("held ≥ 100,000: 99,999, 3.7 KiB of RSS each, NOT MET");
    const quick = run(600, 4, 350);
    quick.results.push(held(2_000, 1));
    expect(markdown(quick)).toContain("held ≥ 100,000: 2,000, 3.7 KiB of RSS each, n/a (a quick run");
    expect(markdown(run(600, 4, 350))).not.toContain("- connections:");
  });

  it("gives the machine gauge of the run's start and end, and no line for a run from before the gauge", () => {
    const gauged = run(600, 4, 350);
    gauged.machine.gauge = {
      start: { decode_us: 1.4, fsync_p50_ms: 0.25, fsync_p99_ms: 2.5 },
      end: { decode_us: 2.1, fsync_p50_ms: 0.5, fsync_p99_ms: 7 },
    };
    expect(markdown(gauged)).toContain(
      "a reference frame decoded in 1.4 / 2.1 µs, a 24 KiB write + fsync in 0.25 / 0.5 ms at p50 and 2.5 / 7 ms at p99.",
    );
    gauged.machine.gauge = {
      start: { decode_us: 1.4, fsync_p50_ms: 0.25, fsync_p99_ms: 2.5, loopback_rtt_us: 20.5 },
      end: { decode_us: 2.1, fsync_p50_ms: 0.5, fsync_p99_ms: 7, loopback_rtt_us: 41 },
    };
    expect(markdown(gauged)).toContain("at p99, a 64-byte round trip over loopback TCP in 20.5 / 41 µs.");
    gauged.machine.gauge = {
      start: { decode_us: 1.4, fsync_p50_ms: 0.25, fsync_p99_ms: 2.5, loopback_rtt_us: 20.5, argon2_ms: 90 },
      end: { decode_us: 2.1, fsync_p50_ms: 0.5, fsync_p99_ms: 7, loopback_rtt_us: 41, argon2_ms: 180.5 },
    };
    expect(markdown(gauged)).toContain("41 µs, an argon2id hash (64 MiB) in 90 / 180.5 ms.");
    expect(markdown(run(600, 4, 350))).not.toContain("Machine gauge");
  });

  it("puts the hand-written limits right under the aims, and nothing when there are none", () => {
    const text = markdown(run(600, 4, 350), "## What limits Parley\n\nThe disk.\n");
    const aims = text.indexOf("## Against the aims");
    const limits = text.indexOf("## What limits Parley");
    expect(aims).toBeGreaterThan(0);
    expect(limits).toBeGreaterThan(aims);
    expect(limits).toBeLessThan(text.indexOf("### fanout-100"));
    expect(markdown(run(600, 4, 350))).not.toContain("What limits");
  });
});

describe("every full run's verdicts", () => {
  const resume = (lost: number, duplicated: number): ScenarioResult => ({
    scenario: "resume",
    target: "parley",
    settings: {},
    metrics: { lost, duplicated, caught_up_s: 8.04 },
  });
  const full = (date: string, fanout: number, dms: number, extra: ScenarioResult[] = []): Run => {
    const r = run(fanout, 4, dms);
    return { ...r, date, quick: false, results: [...r.results, ...extra] };
  };

  it("says the resume storm is met only with nothing lost and nothing duplicated", () => {
    const ok = full("2026-11-30T01:00:00.000Z", 600, 350, [resume(0, 0)]);
    expect(markdown(ok)).toContain(
      "- resume storm: 0 messages lost and 0 duplicated: 0 lost, 0 duplicated (everyone caught up after 8.0 s), MET",
    );
    expect(markdown(full("x", 600, 350, [resume(0, 2)]))).toContain("0 lost, 2 duplicated (everyone");
    expect(markdown(full("x", 600, 350, [resume(0, 2)]))).toContain("after 8.0 s), NOT MET");
    expect(markdown(full("x", 600, 350, [resume(3, 0)]))).toContain("3 lost, 0 duplicated (everyone");
  });

  it("lists full runs newest first with each aim's figure and verdict, skips quick runs and counts the met ones", () => {
    const older = full("2026-11-29T10:00:00.000Z", 590, 350);
    const newer = full("2026-11-30T10:00:00.000Z", 600, 340, [resume(0, 0)]);
    newer.machine.gauge = { start: { decode_us: 1, fsync_p50_ms: 0.12, fsync_p99_ms: 0.3, argon2_ms: 99.6 } };
    newer.machine.commit = "1d276e2abc";
    const quick = { ...run(100, 40, 10), date: "2026-11-30T11:00:00.000Z" };
    const text = aimsAcrossRuns([older, quick, newer]);
    const lines = text.split("\n").filter((l) => l.startsWith("| "));
    expect(lines).toHaveLength(5); // head, rule, two runs, the count
    const cells = (line: string) => line.split("|").map((c) => c.trim());
    expect(cells(lines[0] as string)).toEqual([
      "",
      "run (UTC)",
      "code",
      "machine",
      "fanout-100 ≥ 0.6× ceiling",
      "fanout-100 ≥ 3× ws / Socket.IO",
      "fanout-100 p99 ≤ 2× ceiling",
      "dms-100 ≥ 0.35× echo",
      "resume: 0 lost / 0 dup",
      "",
    ]);
    expect(cells(lines[2] as string).slice(1, -1)).toEqual([
      "2026-11-30 10:00",
      "1d276e2abc",
      "test, fsync 0.12 ms, argon2id 100 ms",
      "0.60× ✓",
      "3.00× / 2.40× ✗",
      "2.00× ✓",
      "0.34× ✗",
      "0 / 0 ✓",
    ]);
    expect(cells(lines[3] as string).slice(1, -1)).toEqual([
      "2026-11-29 10:00",
      "–",
      "test",
      "0.59× ✗",
      "2.95× / 2.36× ✗",
      "2.00× ✓",
      "0.35× ✓",
      "–",
    ]);
    expect(cells(lines[4] as string).slice(1, -1)).toEqual([
      "met in",
      "",
      "",
      "1 of 2",
      "0 of 2",
      "2 of 2",
      "1 of 2",
      "1 of 1",
    ]);
    expect(text).not.toContain("2026-11-30 11:00");
  });

  it("marks ws / Socket.IO missed when either is, and unmarked when one could not be measured", () => {
    const noSocketIo = full("2026-11-30T10:00:00.000Z", 900, 350);
    noSocketIo.results = noSocketIo.results.filter((r) => r.target !== "socketio");
    const cell = (r: Run) =>
      (aimsAcrossRuns([r]).split("\n")[6] as string).split("|").map((c) => c.trim())[5];
    expect(cell(noSocketIo)).toBe("4.50× / –");
    expect(cell(full("2026-11-30T10:00:00.000Z", 900, 350))).toBe("4.50× / 3.60× ✓");
    expect(cell(full("2026-11-30T10:00:00.000Z", 700, 350))).toBe("3.50× / 2.80× ✗");
  });

  it("names the code a run measured in its first line, and nothing for a run from before that", () => {
    const r = full("2026-11-30T10:00:00.000Z", 600, 350);
    expect(markdown(r)).toContain("Bun 1, Node 1. Servers");
    r.machine.commit = "1d276e2abc+changes";
    expect(markdown(r)).toContain("Bun 1, Node 1, Parley at 1d276e2abc+changes. Servers");
  });

  it("shows the last runs only, and no table without a full run", () => {
    const many = Array.from({ length: RUNS_SHOWN + 5 }, (_, i) =>
      full(`2026-11-${String(i + 1).padStart(2, "0")}T00:00:00.000Z`, 600, 350),
    );
    const text = aimsAcrossRuns(many);
    expect(text).toContain(`the last ${RUNS_SHOWN}, newest first`);
    expect(text).toContain("2026-11-25 00:00");
    expect(text).toContain("2026-11-06 00:00");
    expect(text).not.toContain("2026-11-05 00:00");
    expect(aimsAcrossRuns([run(600, 4, 350)])).toBe("");
    const latest = many.at(-1) as Run;
    expect(markdown(latest, undefined, many)).toContain("### Every full run");
    expect(markdown(latest, undefined, [run(600, 4, 350)])).not.toContain("### Every full run");
    expect(markdown(latest)).not.toContain("### Every full run");
  });
});

describe("the published results", () => {
  it("RESULTS.md is what the latest run, LIMITS.md and the saved runs make (run --render after editing LIMITS.md)", () => {
    const latest = JSON.parse(readFileSync(join(RESULTS_DIR, "latest.json"), "utf8")) as Run;
    expect(savedRuns().some((r) => r.date === latest.date)).toBe(true);
    const published = readFileSync(join(BENCH_DIR, "RESULTS.md"), "utf8");
    expect(published === rendered(latest).markdown).toBe(true);
  });
});

describe("cross-node tables", () => {
  const cross = (target: string, deliveries: number, p99: number): ScenarioResult => ({
    ...result("cross-node-100", target, "max", deliveries, p99),
    settings: { mode: "max", members: 100, nodes: 2, window: 256 },
    metrics: {
      deliveries_per_s: deliveries,
      server_cpu_pct: 50,
      node_a_cpu_pct: 20,
      node_b_cpu_pct: 30,
      redis_cpu_pct: 5,
    },
  });
  const section = (text: string, title: string) => {
    const start = text.indexOf(`### ${title}\n`);
    const end = text.indexOf("\n### ", start + 1);
    return text.slice(start, end < 0 ? undefined : end);
  };

  it("give both nodes' CPU and redis-server's, with ratios to Parley, and leave the other tables alone", () => {
    const base = run(600, 4, 350);
    const text = markdown({
      ...base,
      results: [...base.results, cross("parley", 300, 20), cross("bare-bun", 600, 10)],
    });
    const table = section(text, "cross-node-100 max");
    expect(table).toContain("Settings: members 100, nodes 2, window 256.");
    expect(table).toContain("The sender is on node A, every receiver on node B");
    expect(table).toContain("| server CPU % | node A CPU % | node B CPU % | redis CPU % | gen CPU % |");
    expect(table).toMatch(
      /\| bare-bun \|\s+600 \|.*\|\s+50 \|\s+20 \|\s+30 \|\s+5 \|.*\|\s+0\.50× \|\s+2\.00× \|/,
    );
    expect(section(text, "fanout-100 max")).not.toContain("node A CPU");
    expect(text.slice(0, text.indexOf("### "))).not.toContain("cross-node");
  });

  it("show a target that delivered nothing as 0 with no latency and no ratios, and say why", () => {
    const phase: PhaseResult = {
      sent: 256,
      received: 0,
      sentPerSec: 85,
      deliveriesPerSec: 0,
      hist: new Histogram(),
      generatorCpuPct: 2,
      serverCpuPct: 1,
      serverCpuPcts: [0.5, 0.5],
      otherCpuPct: { redis: 0.1 },
      serverRssMiB: 200,
      acks: 256,
      errors: 0,
      closed: 0,
      closeCodes: {},
      stalls: 1,
      drainMs: 30_000,
      late: 4_000,
    };
    const parley = toResult("cross-node-100", "parley", { mode: "max", members: 100, nodes: 2 }, phase, {
      node_a_cpu_pct: 0.5,
      node_b_cpu_pct: 0.5,
    });
    expect(parley.latency).toBeUndefined();
    expect(parley.notes).toContain("0 deliveries in the measured window: no receiver got a message");
    expect(parley.notes).toContain(
      "deliveries still arriving 30 s after the phase: the next one met its backlog",
    );
    expect(parley.metrics).toMatchObject({ drain_ms: 30_000, late_deliveries: 4_000 });
    const table = section(
      markdown({ ...run(600, 4, 350), results: [parley, cross("bare-bun", 600, 10)] }),
      "cross-node-100 max",
    );
    expect(table).toMatch(/\| parley {3}\|\s+0 \|\s+85 \|(\s+– \|){5}/);
    expect(table).toMatch(/\| bare-bun \|.*\|\s+– \|\s+– \|$/m);
    expect(table).toContain("- parley: 0 deliveries in the measured window");
  });
});

describe("BENCH_TARGETS", () => {
  it("picks the named targets in the suite's order, every target when unset, and refuses unknown names", () => {
    expect(pickTargets(undefined)).toEqual(["parley", "bare-bun", "node-ws", "socketio"]);
    expect(pickTargets("socketio, parley")).toEqual(["parley", "socketio"]);
    expect(() => pickTargets("parley,centrifugo")).toThrow("unknown target(s) centrifugo");
  });
});

describe("machine gauge", () => {
  it("measures a decode, the disk's fsync and a loopback round trip, in positive figures", async () => {
    const g = await gauge(1, 1000, 10, 200, 1);
    expect(g.loopback_rtt_us).toBeGreaterThan(0);
    expect(g.argon2_ms).toBeGreaterThan(0);
    expect(g.decode_us).toBeGreaterThan(0);
    expect(g.fsync_p50_ms).toBeGreaterThan(0);
    expect(g.fsync_p99_ms).toBeGreaterThanOrEqual(g.fsync_p50_ms);
  });
});

describe("codeVersion", () => {
  it("gives the checkout's short commit, marks changes outside bench/results, and says unknown outside git", () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-code-"));
    const git = (...args: string[]) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8" }).trim();
    expect(codeVersion(dir)).toBe("unknown");
    git("init", "-q");
    mkdirSync(join(dir, "bench", "results"), { recursive: true });
    writeFileSync(join(dir, "a.txt"), "a");
    git("add", ".");
    git("-c", "user.email=b@x.io", "-c", "user.name=bench", "commit", "-qm", "first");
    const commit = git("rev-parse", "--short=10", "HEAD");
    // Asked from bench/, as the suite does: the whole checkout counts, bench/results does not.
    const bench = join(dir, "bench");
    expect(codeVersion(bench)).toBe(commit);
    writeFileSync(join(dir, "bench", "results", "run.json"), "{}");
    writeFileSync(join(dir, "untracked.txt"), "?");
    expect(codeVersion(bench)).toBe(commit);
    writeFileSync(join(dir, "a.txt"), "changed");
    expect(codeVersion(bench)).toBe(`${commit}+changes`);
    expect(codeVersion(dir)).toBe(`${commit}+changes`);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("the rest table", () => {
  const rest = (target: string, operation: string, ops: number, p99: number): ScenarioResult => ({
    scenario: "rest",
    target,
    settings: { operation, seconds: 10, concurrency: 32, users: 8 },
    metrics: { ops_per_s: ops, server_cpu_pct: 90 },
    latency: { count: 100, p50: p99 / 2, p90: p99 / 1.5, p99, p999: p99, max: p99 * 2 },
    generator_cpu_pct: 30,
    notes: target === "parley" ? ["one Parley process at LOG_LEVEL=info"] : [],
  });

  it("gives every target's requests/s per operation with Parley's ratios, each note once, and no other table", () => {
    const base = run(600, 4, 350);
    const text = markdown({
      ...base,
      results: [
        ...base.results,
        rest("parley", "send", 10_000, 8),
        rest("bare-bun", "send", 50_000, 2),
        rest("node-express", "send", 4_000, 20),
        rest("parley", "signin", 20, 2_000),
        rest("bare-bun", "signin", 20, 2_500),
        {
          scenario: "rest",
          target: "node-express",
          settings: { operation: "all" },
          metrics: {},
          notes: ["failed: node: not found"],
        },
      ],
    });
    const start = text.indexOf("### rest\n");
    const table = text.slice(start, text.indexOf("\n## ", start));
    expect(start).toBeGreaterThan(0);
    expect(table).toContain(
      "Settings: 10 s per operation, 32 requests in flight, 8 users in one conversation.",
    );
    expect(table).toMatch(/\| send +\| +parley \| +10,000\.0 \|.*\| +1\.00× \| +1\.00× \|/);
    expect(table).toMatch(/\| send +\| +bare-bun \| +50,000\.0 \|.*\| +0\.20× \| +4\.00× \|/);
    expect(table).toMatch(/\| send +\| node-express \| +4,000\.0 \|.*\| +2\.50× \| +0\.40× \|/);
    expect(table).toMatch(/\| signin +\| +bare-bun \| +20\.0 \|.*\| +1\.00× \| +0\.80× \|/);
    expect(table).toMatch(/\| all +\| node-express \| +– \|/);
    expect(table).toContain("- node-express: failed: node: not found");
    expect(table.split("one Parley process at LOG_LEVEL=info")).toHaveLength(2);
    // Not in the realtime comparisons, nor in the table of other scenarios.
    expect(text).not.toContain("### rest all");
    expect(text).not.toMatch(/\| rest +\|/);
  });
});

describe("the connections table", () => {
  const held = (target: string, rss: number, rate: number): ScenarioResult => ({
    scenario: "connections",
    target,
    settings: { server_processes: 6, auth: target === "parley" ? "bearer + session check + hello" : "none" },
    metrics: {
      connections_held: 100_000,
      connections_dropped: 0,
      rss_per_conn_bytes: rss * 1.5,
      idle_s: 15,
      rss_per_conn_idle_bytes: rss,
      connect_per_s: rate,
    },
    notes: ["stop: all steps passed", "step 5000: 5000/5000 new in 1.4 s"],
  });

  it("gives every target's sockets and RSS each, after the storm and idle, with Parley's ratios, and leaves each step to the JSON", () => {
    const base = run(600, 4, 350);
    const text = markdown({
      ...base,
      results: [
        ...base.results,
        held("parley", 3_072, 6_000),
        held("node-ws", 4_096, 9_000),
        held("socketio", 12_288, 4_000),
      ],
    });
    const start = text.indexOf("### connections\n");
    const table = text.slice(start, text.indexOf("\n## ", start));
    expect(start).toBeGreaterThan(0);
    expect(table).toContain("again after the sockets have been idle 15 s");
    expect(table).toMatch(
      /\| parley +\| 100,000 \| +0 \| +4\.5 \| +3\.0 \| +6,000 \|.*\| +1\.00× \| +1\.00× \|/,
    );
    expect(table).toMatch(
      /\| node-ws +\| 100,000 \| +0 \| +6\.0 \| +4\.0 \| +9,000 \|.*\| +none \| +0\.75× \| +0\.67× \|/,
    );
    expect(table).toMatch(/\| socketio +\| 100,000 \| +0 \| +18\.0 \| +12\.0 \|.*\| +0\.25× \| +1\.50× \|/);
    expect(table).toContain("- node-ws: stop: all steps passed");
    expect(table).not.toContain("step 5000");
    expect(text).not.toMatch(/\| connections +\|/);
    expect(text).toContain("4.5 KiB of RSS each (3.0 KiB after 15 s idle), n/a (a quick run");
  });

  it("gives RSS per socket in one unit, KiB (1,024 bytes), in its table, the aim's line and LIMITS.md", () => {
    const base = run(600, 4, 350);
    // 3,000 bytes: 2.9 KiB, where 1,000-byte KB would say 3.0.
    const text = markdown({ ...base, results: [...base.results, held("parley", 3_000, 6_000)] });
    const table = text.slice(text.indexOf("### connections\n"));
    expect(table).toContain("RSS per socket (KiB)");
    expect(table).toMatch(/\| parley +\| 100,000 \| +0 \| +4\.4 \| +2\.9 \|/);
    expect(text).toContain("4.4 KiB of RSS each (2.9 KiB after 15 s idle)");
    expect(text).not.toMatch(/\d KB\b/);
    // LIMITS.md, copied into RESULTS.md, quotes the same figures: in the same unit.
    expect(readFileSync(join(BENCH_DIR, "LIMITS.md"), "utf8")).not.toMatch(/\d(–\d+(\.\d+)?)? KB\b/);
  });
});

describe("the resume storm table", () => {
  const storm = (target: string, caughtUp: number, lost: number): ScenarioResult => ({
    scenario: "resume",
    target,
    settings: {
      clients: 5000,
      group_size: 100,
      messages_per_group: 200,
      edits_per_group: 20,
      deletes_per_group: 10,
    },
    metrics: {
      clients_caught_up: 5000,
      caught_up_s: caughtUp,
      all_connected_s: 2,
      lost,
      duplicated: 0,
      changes_replayed: 1e6,
    },
    latency: { count: 5000, p50: 1000, p90: 2000, p99: 3000, p999: 3000, max: 3000 },
    notes: [`${target} note`],
  });

  it("puts Parley and Socket.IO side by side with what each lost and Parley's ratio of times", () => {
    const base = run(600, 4, 350);
    const text = markdown({
      ...base,
      results: [...base.results, storm("parley", 4.8, 0), storm("socketio", 16, 7)],
    });
    const start = text.indexOf("### resume storm\n");
    const table = text.slice(start, text.indexOf("\n## ", start));
    expect(start).toBeGreaterThan(0);
    expect(table).toContain(
      "Settings: 5000 clients in groups of 100; while they are away each group gets 200 messages",
    );
    expect(table).toMatch(/\| parley +\| +5,000 \| +4\.8 \| +2\.0 \| +0 \| +0 \|.*\| +1\.00× \|/);
    expect(table).toMatch(/\| socketio \| +5,000 \| +16\.0 \| +2\.0 \| +7 \| +0 \|.*\| +0\.30× \|/);
    expect(table).toContain("- socketio: socketio note");
    expect(text).not.toMatch(/\| resume +\|/);
  });
});

describe("package versions", () => {
  it("records every peer's and client's installed version, missing ones as such, and names them in RESULTS.md", () => {
    const root = mkdtempSync(join(tmpdir(), "parley-packages-"));
    try {
      mkdirSync(join(root, "node_modules", "@socket.io", "redis-adapter"), { recursive: true });
      writeFileSync(
        join(root, "node_modules", "@socket.io", "redis-adapter", "package.json"),
        '{"version":"8.3.0"}',
      );
      mkdirSync(join(root, "node_modules", "ws"), { recursive: true });
      writeFileSync(join(root, "node_modules", "ws", "package.json"), '{"version":"8.23.0"}');
      const versions = packageVersions(root);
      expect(Object.keys(versions)).toEqual([...PEER_PACKAGES]);
      expect(versions).toMatchObject({
        "@socket.io/redis-adapter": "8.3.0",
        ws: "8.23.0",
        express: "missing",
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    expect(packageVersions().express).toMatch(/^5\./);
    const base = run(600, 4, 350);
    const text = markdown({
      ...base,
      machine: { ...base.machine, packages: { "socket.io": "4.8.4", ws: "8.23.0" } },
    });
    expect(text).toContain("Packages: socket.io 4.8.4, ws 8.23.0.");
    expect(markdown(base)).not.toContain("Packages:");
  });
});

describe("runFailures", () => {
  it("lists the scenarios that threw and the targets whose rows failed, and nothing for a run that ran", () => {
    const ok: ScenarioResult = {
      scenario: "fanout-100",
      target: "parley",
      settings: { mode: "max" },
      metrics: { deliveries_per_s: 1000 },
      notes: ["best of 2 rounds (most deliveries/s): 900/s, 1,000/s (this one)", "a round failed: Error: x"],
    };
    const failed: ScenarioResult = {
      scenario: "dms-100",
      target: "node-ws",
      settings: { users: 200 },
      metrics: {},
      notes: ["failed: Error: node-ws start: no answer within 15000 ms"],
    };
    expect(runFailures({ results: [ok], errors: [] })).toEqual([]);
    expect(
      runFailures({
        results: [ok, failed],
        errors: ["cross-node: Error: Redis at redis://x does not answer"],
      }),
    ).toEqual([
      "cross-node: Error: Redis at redis://x does not answer",
      "dms-100: node-ws: failed: Error: node-ws start: no answer within 15000 ms",
    ]);
  });
});
