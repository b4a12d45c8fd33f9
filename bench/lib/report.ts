// Reporting a benchmark run: latency summaries, the Markdown table and the JSON files under bench/results.

import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { join } from "node:path";

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of samples in milliseconds, rounded to microseconds. */
export function summarize(samples: number[]): Summary {
  if (samples.length === 0) throw new Error("summarize: no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => round3(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number);
  return { count: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: at(100) };
}

export const round3 = (n: number) => Math.round(n * 1000) / 1000;

/** A table with padded columns (names left, numbers right), as Biome formats Markdown. */
export function markdownTable(rows: Array<[string, Summary]>): string {
  const head = ["query", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"];
  const body = rows.map(([name, s]) => [
    name,
    String(s.count),
    fmt(s.p50),
    fmt(s.p90),
    fmt(s.p99),
    fmt(s.max),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`;
  return [line(head), rule, ...body.map(line)].join("\n");
}

const fmt = (ms: number) => ms.toFixed(3);

export function machine() {
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    bun: Bun.version,
  };
}

/**
 * Writes `<name>-<UTC time>.json` and `<name>-latest.json` under bench/results. The time is ISO 8601
 * with ":" replaced by "-" so the name is valid on every filesystem; returns both paths.
 */
export function writeResults(name: string, data: unknown, at = new Date()): string[] {
  const dir = join(import.meta.dir, "..", "results");
  mkdirSync(dir, { recursive: true });
  const stamp = at
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replaceAll(":", "-");
  const text = `${JSON.stringify(data, null, 2)}\n`;
  const paths = [join(dir, `${name}-${stamp}.json`), join(dir, `${name}-latest.json`)];
  for (const p of paths) writeFileSync(p, text);
  return paths;
}
