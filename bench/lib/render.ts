// Renders a suite run: the Markdown report (tables per scenario with Parley/target ratios, and where Parley
// stands against the issue's aims) and a hand-written SVG of latency percentiles and throughput.

import { kib, num, ratio, table } from "./format.ts";
import type { Gauge } from "./gauge.ts";
import { connectionsComparison, restComparison, resumeComparison } from "./tables.ts";
import type { ScenarioResult } from "./types.ts";

export interface Run {
  date: string;
  quick: boolean;
  machine: Record<string, unknown>;
  results: ScenarioResult[];
  errors: string[];
}

/** Rows that compare targets: same scenario and same mode. */
export function groups(results: ScenarioResult[]): Map<string, ScenarioResult[]> {
  const out = new Map<string, ScenarioResult[]>();
  for (const r of results) {
    const key = `${r.scenario}${r.settings.mode ? ` ${String(r.settings.mode)}` : ""}${r.settings.query ? ` ${String(r.settings.query)}` : ""}`;
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  return out;
}

function settingsLine(r: ScenarioResult): string {
  const s = r.settings;
  const keys = [
    "members",
    "nodes",
    "users",
    "rate",
    "rate_per_user",
    "window",
    "window_per_user",
    "workers",
    "measureMs",
    "messages",
    "rounds",
  ];
  return keys
    .filter((k) => s[k] !== undefined)
    .map((k) => `${k} ${String(s[k])}${k === "rate" ? rateBasis(r) : ""}`)
    .join(", ");
}

/** What a fixed phase's rate was (scenarios/fanout.ts), where the run recorded it (older runs did not). */
const rateBasis = (r: ScenarioResult) =>
  r.settings.rate_basis === "fallback"
    ? " (the fallback: Parley's max phase gave no rate)"
    : r.settings.rate_basis === "half_parley_max"
      ? " (half of Parley's max)"
      : "";

/** The load a set-rate phase was measured at ("2,761 msg/s", "1 msg/s per user"); none at a max rate. */
function loadOf(r: ScenarioResult): string | undefined {
  const { rate, rate_per_user: perUser } = r.settings;
  if (rate !== undefined) return `${num(Number(rate))} msg/s`;
  if (perUser !== undefined) return `${num(Number(perUser))} msg/s per user`;
  return undefined;
}

/**
 * Why `r`'s figures do not compare with Parley's in one table: measured at another load (a round that ran
 * at the fallback rate before Parley had measured its maximum). A ratio of the two would be of unlike things.
 */
function unlikeParley(parley: ScenarioResult | undefined, r: ScenarioResult): string | undefined {
  const theirs = loadOf(r);
  const ours = parley && loadOf(parley);
  return ours !== undefined && theirs !== undefined && ours !== theirs
    ? `measured at ${theirs}, Parley at ${ours}`
    : undefined;
}

/** Cross-node rows (two server processes and Redis) also give each node's CPU and redis-server's. */
const NODE_CPU = [
  ["node A CPU %", "node_a_cpu_pct"],
  ["node B CPU %", "node_b_cpu_pct"],
  ["redis CPU %", "redis_cpu_pct"],
] as const;

function comparison(title: string, rows: ScenarioResult[]): string {
  const parley = rows.find((r) => r.target === "parley");
  const pThr = parley?.metrics.deliveries_per_s;
  const pP99 = parley?.latency?.p99;
  const nodes = rows.some((r) => r.metrics.node_a_cpu_pct !== undefined);
  const apart = new Map(rows.map((r) => [r, unlikeParley(parley, r)]));
  const body = rows.map((r) => [
    r.target,
    num(r.metrics.deliveries_per_s),
    num(r.metrics.messages_per_s),
    num(r.latency?.p50, 2),
    num(r.latency?.p90, 2),
    num(r.latency?.p99, 2),
    num(r.latency?.p999, 2),
    num(r.latency?.max, 2),
    num(r.metrics.server_cpu_pct),
    ...(nodes ? NODE_CPU.map(([, key]) => num(r.metrics[key])) : []),
    num(r.generator_cpu_pct),
    r.target === "parley" ? "1.00×" : apart.get(r) ? "n/a" : ratio(pThr, r.metrics.deliveries_per_s),
    r.target === "parley" ? "1.00×" : apart.get(r) ? "n/a" : ratio(pP99, r.latency?.p99),
  ]);
  const head = [
    "target",
    "deliveries/s",
    "sent/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "server CPU %",
    ...(nodes ? NODE_CPU.map(([h]) => h) : []),
    "gen CPU %",
    "Parley/this thr",
    "Parley/this p99",
  ];
  const notes = rows.flatMap((r) => [
    ...(r.notes ?? []).map((n) => `- ${r.target}: ${n}`),
    ...(apart.get(r) ? [`- ${r.target}: no ratios to Parley (n/a): ${apart.get(r)}`] : []),
  ]);
  const first = rows[0];
  return [
    `### ${title}`,
    "",
    first ? `Settings: ${settingsLine(first)}.` : "",
    ...(nodes
      ? [
          "The sender is on node A, every receiver on node B, joined through Redis; server CPU is both nodes'.",
        ]
      : []),
    "",
    table(head, body),
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}

/** The connections scenario's aim: this many authenticated idle sockets (bench/scenarios/connections.ts). */
export const CONNECTIONS_AIM = 100_000;

/**
 * What did not run to the end in `run`: each scenario that threw and each target whose row failed (its
 * figures missing), one line each; empty when everything ran. An aim not met is a result, not a failure.
 */
export function runFailures(run: Pick<Run, "results" | "errors">): string[] {
  return [
    ...run.errors,
    ...run.results.flatMap((r) => {
      const note = r.notes?.find((n) => n.startsWith("failed"));
      return note ? [`${r.scenario}: ${r.target}: ${note}`] : [];
    }),
  ];
}

/**
 * One aim of issue 5 checked on one run: its line under "Against the aims", and its cell in the table of
 * every full run (`column` names the aim there, `figure` is what the run measured against it).
 */
export interface AimCheck {
  column: string;
  figure: string;
  ok: boolean | undefined;
  line: string;
}

const verdict = (ok: boolean | undefined) => (ok === undefined ? "n/a" : ok ? "MET" : "NOT MET");
/** Both met; missed when either is; n/a when one could not be checked and the other was met. */
const both = (a: boolean | undefined, b: boolean | undefined) =>
  a === false || b === false ? false : a === undefined || b === undefined ? undefined : true;

/** Where Parley stands against the aims in issue 5 ("Then make it fast", the connections and resume scenarios'). */
export function aimChecks(results: ScenarioResult[], quick: boolean): AimCheck[] {
  const find = (scenario: string, mode: string, target: string) =>
    results.find((r) => r.scenario === scenario && r.settings.mode === mode && r.target === target);
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  const checks: AimCheck[] = [];
  // A Parley that delivered nothing in its window was measured, and missed the aim: only a missing figure
  // (a failed target) or a comparison that delivered nothing is n/a.
  const ok = (a?: number, b?: number, k = 1) =>
    a !== undefined && !Number.isNaN(a) && b ? a >= k * b : undefined;
  // The tables leave a ratio out when Parley delivered nothing; an aim says 0.00× and NOT MET.
  const of = (a?: number, b?: number) => (a === 0 && b ? "0.00×" : ratio(a, b));
  for (const scenario of scenarios.filter((s) => s.startsWith("fanout"))) {
    const p = find(scenario, "max", "parley")?.metrics.deliveries_per_s;
    const c = find(scenario, "max", "bare-bun")?.metrics.deliveries_per_s;
    const w = find(scenario, "max", "node-ws")?.metrics.deliveries_per_s;
    const s = find(scenario, "max", "socketio")?.metrics.deliveries_per_s;
    const ofCeiling = ok(p, c, 0.6);
    checks.push({
      column: `${scenario} ≥ 0.6× ceiling`,
      figure: of(p, c),
      ok: ofCeiling,
      line: `- ${scenario} deliveries/s ≥ 60% of the ceiling: ${of(p, c)} of it, ${verdict(ofCeiling)}`,
    });
    const [ofWs, ofSocketIo] = [ok(p, w, 3), ok(p, s, 3)];
    checks.push({
      column: `${scenario} ≥ 3× ws / Socket.IO`,
      figure: `${of(p, w)} / ${of(p, s)}`,
      ok: both(ofWs, ofSocketIo),
      line: `- ${scenario} deliveries/s ≥ 3× ws: ${of(p, w)}, ${verdict(ofWs)}; ≥ 3× Socket.IO: ${of(p, s)}, ${verdict(ofSocketIo)}`,
    });
    const pf = find(scenario, "fixed", "parley");
    const cf = find(scenario, "fixed", "bare-bun");
    const pp = pf?.latency?.p99;
    const cp = cf?.latency?.p99;
    // Only p99s taken at one load, and at the aim's (half of Parley's max), compare.
    const apart = cf && unlikeParley(pf, cf);
    const why = apart
      ? `the ceiling ${apart}`
      : pf?.settings.rate_basis === "fallback"
        ? `Parley's max phase gave no rate, so its fixed phase ran at the fallback ${loadOf(pf)}`
        : undefined;
    const tail = why ? undefined : pp && cp ? pp <= 2 * cp : undefined;
    checks.push({
      column: `${scenario} p99 ≤ 2× ceiling`,
      figure: why ? "n/a" : ratio(pp, cp),
      ok: tail,
      line: why
        ? `- ${scenario} p99 at half Parley's max rate ≤ 2× the ceiling's: ${num(pp, 2)} ms vs ${num(cp, 2)} ms, ` +
          `n/a: ${why}`
        : `- ${scenario} p99 at half Parley's max rate (${String(pf?.settings.rate ?? "–")} msg/s) ≤ 2× the ceiling's: ` +
          `${num(pp, 2)} ms vs ${num(cp, 2)} ms (${ratio(pp, cp)}), ${verdict(tail)}`,
    });
  }
  for (const scenario of scenarios.filter((s) => s.startsWith("dms"))) {
    const p = find(scenario, "max", "parley")?.metrics.deliveries_per_s;
    const c = find(scenario, "max", "bare-bun")?.metrics.deliveries_per_s;
    const persisted = ok(p, c, 0.35);
    checks.push({
      column: `${scenario} ≥ 0.35× echo`,
      figure: of(p, c),
      ok: persisted,
      line: `- ${scenario} persisted messages/s ≥ 35% of the ceiling's echo rate: ${of(p, c)}, ${verdict(persisted)}`,
    });
  }
  const conns = results.find((r) => r.scenario === "connections" && r.target === "parley");
  if (conns) {
    const held = conns.metrics.connections_held;
    const processes = Number(conns.settings.server_processes ?? 1);
    const rss = conns.metrics.rss_per_conn_bytes;
    const idleRss = conns.metrics.rss_per_conn_idle_bytes;
    const enough = quick || held === undefined ? undefined : held >= CONNECTIONS_AIM;
    checks.push({
      column: `connections ≥ ${num(CONNECTIONS_AIM)}`,
      figure: num(held),
      ok: enough,
      line:
        `- connections: authenticated idle sockets held ≥ ${num(CONNECTIONS_AIM)}: ${num(held)}` +
        (processes > 1 ? ` (${processes} Parley processes on one port)` : "") +
        `, ${num(kib(rss), 1)} KiB of RSS each` +
        (idleRss === undefined
          ? ""
          : ` (${num(kib(idleRss), 1)} KiB after ${num(conns.metrics.idle_s)} s idle)`) +
        ", " +
        (quick ? "n/a (a quick run stops at a few thousand)" : verdict(enough)),
    });
  }
  const resume = results.find((r) => r.scenario === "resume" && r.target === "parley");
  if (resume) {
    const { lost, duplicated, caught_up_s: caughtUp } = resume.metrics;
    const none = lost === undefined || duplicated === undefined ? undefined : lost === 0 && duplicated === 0;
    checks.push({
      column: "resume: 0 lost / 0 dup",
      figure: `${num(lost)} / ${num(duplicated)}`,
      ok: none,
      line:
        `- resume storm: 0 messages lost and 0 duplicated: ${num(lost)} lost, ${num(duplicated)} duplicated ` +
        `(everyone caught up after ${num(caughtUp, 1)} s), ${verdict(none)}`,
    });
  }
  return checks;
}

/** Runs shown in the table across runs, newest first. */
export const RUNS_SHOWN = 20;

const shortCpu = (cpu: unknown) =>
  String(cpu ?? "?")
    .replace(/\((R|TM)\)/g, "")
    .replace(/\b(Processor|CPU)\b/g, "")
    .replace(/\s+/g, " ")
    .trim();

/**
 * Every full run's verdicts side by side, newest first (the last `RUNS_SHOWN`), with the machine it ran on
 * and its gauge, and how often each aim was met: one run's verdict is the machine's state as much as
 * Parley's, the spread across runs says which aims hold.
 */
export function aimsAcrossRuns(runs: Run[]): string {
  const shown = runs
    .filter((r) => !r.quick)
    .sort((a, b) => b.date.localeCompare(a.date))
    .slice(0, RUNS_SHOWN);
  if (shown.length === 0) return "";
  const checked = shown.map((r) => ({ run: r, checks: aimChecks(r.results, r.quick) }));
  const columns = [...new Set(checked.flatMap((c) => c.checks.map((k) => k.column)))];
  const mark = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? " ✓" : " ✗");
  const rows = checked.map(({ run, checks }) => {
    const g = (run.machine.gauge as { start?: Gauge } | undefined)?.start;
    const machine =
      shortCpu(run.machine.cpu) +
      (g ? `, fsync ${g.fsync_p50_ms} ms` : "") +
      (g?.argon2_ms !== undefined ? `, argon2id ${Math.round(g.argon2_ms)} ms` : "");
    return [
      run.date.slice(0, 16).replace("T", " "),
      run.machine.commit === undefined ? "–" : String(run.machine.commit),
      machine,
      ...columns.map((col) => {
        const k = checks.find((c) => c.column === col);
        return k ? `${k.figure}${mark(k.ok)}` : "–";
      }),
    ];
  });
  const met = columns.map((col) => {
    const verdicts = checked
      .map((c) => c.checks.find((k) => k.column === col)?.ok)
      .filter((v) => v !== undefined);
    return `${verdicts.filter(Boolean).length} of ${verdicts.length}`;
  });
  return [
    `### Every full run (the last ${shown.length}, newest first)`,
    "",
    "Code: the commit measured (runs before 2026-11-30 06:56 did not record it). Machine: its CPU and, where the run has a gauge, a 24 KiB fsync's p50 and an argon2id hash at its start " +
      "(slower figures, slower machine). ✓ met, ✗ not met. Files: `bench/results/<UTC time>.json`.",
    "",
    table(["run (UTC)", "code", "machine", ...columns], [...rows, ["met in", "", "", ...met]]),
  ].join("\n");
}
/** The peers' and clients' package versions a run recorded (none before 2026-12-06). */
function packagesLine(value: unknown): string[] {
  if (!value || typeof value !== "object") return [];
  const list = Object.entries(value as Record<string, unknown>).map(([name, v]) => `${name} ${String(v)}`);
  return list.length ? [`Packages: ${list.join(", ")}.`] : [];
}

/** The machine's speed at the run's start and end (lib/gauge.ts); runs from before the gauge have none. */
function gaugeLine(value: unknown): string[] {
  const g = value as { start?: Gauge; end?: Gauge } | undefined;
  if (!g?.start || !g.end) return [];
  const both = (k: keyof Gauge) => `${g.start?.[k]} / ${g.end?.[k]}`;
  return [
    `Machine gauge at the run's start / end (bench/lib/gauge.ts; compare runs by it): a reference frame decoded in ${both("decode_us")} µs, ` +
      `a 24 KiB write + fsync in ${both("fsync_p50_ms")} ms at p50 and ${both("fsync_p99_ms")} ms at p99` +
      (g.start.loopback_rtt_us !== undefined
        ? `, a 64-byte round trip over loopback TCP in ${both("loopback_rtt_us")} µs`
        : "") +
      (g.start.argon2_ms !== undefined ? `, an argon2id hash (64 MiB) in ${both("argon2_ms")} ms.` : "."),
  ];
}

/**
 * `limits`: the hand-written account of what limits Parley (bench/LIMITS.md), placed under the aims;
 * `runs`: the full runs so far (this one among them, if full), for the table of every run's verdicts.
 */
/** The scenarios that count no deliveries, each with a table of its own (lib/tables.ts), in this order. */
const OWN_TABLES: Record<string, (rows: ScenarioResult[]) => string> = {
  rest: restComparison,
  connections: connectionsComparison,
  resume: resumeComparison,
};

export function markdown(run: Run, limits?: string, runs: Run[] = []): string {
  const m = run.machine;
  const out = [
    "<!-- The latest bench suite run (npm run bench / bench:quick), written by bench/index.ts: do not edit by hand. -->",
    "",
    "# Bench results",
    "",
    `Run ${run.date}${run.quick ? " (quick)" : ""} on ${String(m.cores)} cores (${String(m.cpu)}), ${String(m.memoryGiB)} GiB, ` +
      `${String(m.os)}, Bun ${String(m.bun)}, Node ${String(m.node)}` +
      (m.commit === undefined ? "" : `, Parley at ${String(m.commit)}`) +
      ". Servers and load generators share the machine; " +
      "latency is from the send timestamp in the payload to each receipt, across processes on one clock.",
    ...packagesLine(m.packages),
    ...gaugeLine(m.gauge),
    "Ratios are Parley's figure over the row's (throughput: higher is better for Parley; p99: lower is better for Parley).",
    "Full data: `bench/results/latest.json`; chart: `bench/results/latest.svg`.",
    "",
    "## Against the aims",
    "",
    aimChecks(run.results, run.quick)
      .map((c) => c.line)
      .join("\n"),
    "",
    ...(runs.some((r) => !r.quick) ? [aimsAcrossRuns(runs), ""] : []),
    ...(limits ? [limits.trim(), ""] : []),
  ];
  const live = run.results.filter((r) => !(r.scenario in OWN_TABLES));
  for (const [title, rows] of groups(live)) {
    if (
      rows.some((r) => r.metrics.deliveries_per_s !== undefined) ||
      rows.some((r) => r.notes?.some((n) => n.startsWith("failed")))
    ) {
      out.push(comparison(title, rows), "");
    }
  }
  for (const [scenario, render] of Object.entries(OWN_TABLES)) {
    const rows = run.results.filter((r) => r.scenario === scenario);
    if (rows.length) out.push(render(rows), "");
  }
  const other = live.filter(
    (r) => r.metrics.deliveries_per_s === undefined && !r.notes?.some((n) => n.startsWith("failed")),
  );
  if (other.length) {
    out.push("## Other scenarios", "");
    out.push(
      table(
        ["scenario", "target", "settings", "metrics", "p50 ms", "p99 ms", "max ms"],
        other.map((r) => [
          r.scenario,
          r.target,
          Object.entries(r.settings)
            .map(([k, v]) => `${k} ${String(v)}`)
            .join(", "),
          Object.entries(r.metrics)
            .map(([k, v]) => `${k} ${num(v, 1)}`)
            .join(", "),
          num(r.latency?.p50, 3),
          num(r.latency?.p99, 3),
          num(r.latency?.max, 3),
        ]),
      ),
      "",
    );
  }
  if (run.errors.length) out.push("## Errors", "", ...run.errors.map((e) => `- ${e}`), "");
  return out.join("\n");
}

const COLORS: Record<string, string> = {
  parley: "#d9480f",
  "bare-bun": "#495057",
  "node-ws": "#1971c2",
  socketio: "#2f9e44",
};
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** One panel per compared group: latency percentiles (log scale) on the left, deliveries/s on the right. */
export function svg(run: Run): string {
  const panels = [...groups(run.results)].filter(([, rows]) =>
    rows.some((r) => r.metrics.deliveries_per_s !== undefined),
  );
  const W = 960;
  const PH = 190;
  const H = 40 + panels.length * PH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>Parley bench: latency percentiles and deliveries/s per target</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Parley bench ${esc(run.date)}${run.quick ? " (quick)" : ""}: latency percentiles (ms, log scale) and deliveries/s</text>`,
  ];
  const pcts = ["p50", "p90", "p99", "p999"] as const;
  panels.forEach(([title, rows], pi) => {
    const y0 = 40 + pi * PH;
    parts.push(`<text x="10" y="${y0 + 12}" font-weight="bold">${esc(title)}</text>`);
    // Latency: log10 scale from 0.1 ms to the panel's max.
    const lx = 60;
    const lw = 480;
    const top = y0 + 20;
    const bottom = y0 + PH - 30;
    const maxMs = Math.max(1, ...rows.map((r) => r.latency?.p999 ?? 0));
    const lo = Math.log10(0.1);
    const hi = Math.log10(maxMs) + 0.1;
    const yOf = (ms: number) => bottom - ((Math.log10(Math.max(0.1, ms)) - lo) / (hi - lo)) * (bottom - top);
    for (let e = -1; e <= Math.ceil(hi); e++) {
      const ms = 10 ** e;
      if (ms > 10 ** hi) break;
      const y = yOf(ms);
      parts.push(`<line x1="${lx}" x2="${lx + lw}" y1="${y}" y2="${y}" stroke="#e9ecef"/>`);
      parts.push(`<text x="${lx - 4}" y="${y + 4}" text-anchor="end">${ms}</text>`);
    }
    const gw = lw / pcts.length;
    const bw = (gw - 16) / Math.max(1, rows.length);
    pcts.forEach((p, gi) => {
      parts.push(
        `<text x="${lx + gi * gw + gw / 2}" y="${bottom + 14}" text-anchor="middle">${p === "p999" ? "p99.9" : p}</text>`,
      );
      rows.forEach((r, ri) => {
        const v = r.latency?.[p];
        if (v === undefined) return;
        const x = lx + gi * gw + 8 + ri * bw;
        const y = yOf(v);
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(bottom - y).toFixed(1)}" fill="${COLORS[r.target] ?? "#868e96"}"><title>${esc(r.target)} ${p} ${v} ms</title></rect>`,
        );
      });
    });
    // Throughput: horizontal bars scaled to the panel's best.
    const tx = 640;
    const tw = 230;
    const best = Math.max(1, ...rows.map((r) => r.metrics.deliveries_per_s ?? 0));
    rows.forEach((r, ri) => {
      const y = top + ri * 30;
      const v = r.metrics.deliveries_per_s ?? 0;
      parts.push(`<text x="${tx - 6}" y="${y + 14}" text-anchor="end">${esc(r.target)}</text>`);
      parts.push(
        `<rect x="${tx}" y="${y + 2}" width="${((v / best) * tw).toFixed(1)}" height="18" fill="${COLORS[r.target] ?? "#868e96"}"/>`,
      );
      parts.push(`<text x="${(tx + (v / best) * tw + 4).toFixed(1)}" y="${y + 15}">${num(v)}/s</text>`);
    });
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
