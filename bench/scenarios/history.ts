// History paging as a suite scenario: runs bench/history.ts in its own process (50,000 messages in quick
// mode, its default 1,000,000 otherwise) and turns its history-latest.json into result rows.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onStop } from "../lib/proc.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";

interface HistoryJson {
  messages: number;
  limit: number;
  budgetMs: number;
  pass: boolean;
  queries: Record<string, { count: number; p50: number; p90: number; p99: number; max: number }>;
}

const RESULTS = join(import.meta.dir, "..", "results");
const LATEST = join(RESULTS, "history-latest.json");

export const history: Scenario = async ({ quick, log }) => {
  const messages = quick ? 50_000 : 1_000_000;
  // history.ts writes its own files; the suite keeps its figures in its own JSON, so the committed
  // history-latest.json (the 1,000,000-message result README quotes) is put back afterwards.
  const before = new Set(readdirSync(RESULTS));
  const kept = readFileSync(LATEST, "utf8");
  try {
    return await runHistory(messages, quick, log, before);
  } finally {
    for (const f of readdirSync(RESULTS))
      if (!before.has(f) && f.startsWith("history-")) rmSync(join(RESULTS, f));
    writeFileSync(LATEST, kept);
  }
};

/**
 * What a child's stderr says went wrong: its error line (Bun prints "error: …", "TypeError: …" or
 * "ENOENT: …" under a source excerpt), else its last lines.
 */
export async function why(stream: ReadableStream<Uint8Array>): Promise<string> {
  const lines = (await new Response(stream).text())
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("Bun v"));
  const error = lines.find((l) => /^(error|[A-Za-z]*Error|E[A-Z]+):/.test(l));
  return error ?? (lines.slice(-3).join(" | ") || "nothing on stderr");
}

/**
 * Runs `script` (bench/history.ts) over `messages` and turns the file it wrote into rows; `before` is what
 * bench/results held before it started. Its database lives in a temp dir made here and removed whatever
 * happens, since a child killed at the time limit cannot remove its own (452 MiB at 1,000,000 messages).
 */
export async function runHistory(
  messages: number,
  quick: boolean,
  log: (line: string) => void,
  before: Set<string>,
  script = join(import.meta.dir, "..", "history.ts"),
) {
  const tmp = mkdtempSync(join(tmpdir(), "parley-bench-history-run-"));
  try {
    return await runChild(messages, quick, log, before, script, tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function runChild(
  messages: number,
  quick: boolean,
  log: (line: string) => void,
  before: Set<string>,
  script: string,
  tmp: string,
) {
  log(`history: filling ${messages} messages`);
  const child = Bun.spawn([process.execPath, "run", script, "--messages", String(messages)], {
    stdout: "ignore",
    stderr: "pipe",
    env: { ...process.env, TMPDIR: tmp },
  });
  // Stopped by a signal, the suite kills this child too (its temp dir goes in runHistory's finally, or here).
  const off = onStop(async () => {
    child.kill("SIGKILL");
    await child.exited;
    rmSync(tmp, { recursive: true, force: true });
  });
  child.exited.then(off, off);
  const stderr = why(child.stderr);
  const timer = setTimeout(() => child.kill("SIGKILL"), quick ? 120_000 : 900_000);
  const code = await child.exited;
  clearTimeout(timer);
  if (child.signalCode) throw new Error(`history bench killed (${child.signalCode}): ${await stderr}`);
  // This run's own file (history-<UTC time>.json), never history-latest.json: that one is the committed
  // result of an earlier run until history.ts replaces it, and a crash before it writes would leave it there.
  const mine = readdirSync(RESULTS).filter(
    (f) => !before.has(f) && f.startsWith("history-") && f !== "history-latest.json",
  );
  if (mine.length !== 1)
    throw new Error(`history bench exited ${code} without writing its results: ${await stderr}`);
  const data = JSON.parse(readFileSync(join(RESULTS, mine[0] as string), "utf8")) as HistoryJson;
  if (data.messages !== messages)
    throw new Error(`${mine[0]} is from a run of ${data.messages} messages, not ${messages}`);
  return Object.entries(data.queries).map(
    ([query, s]): ScenarioResult => ({
      scenario: "history",
      target: "parley",
      settings: { messages, query, limit: data.limit },
      metrics: { median_budget_ms: data.budgetMs, pass: data.pass ? 1 : 0, exit_code: code },
      latency: { count: s.count, p50: s.p50, p90: s.p90, p99: s.p99, p999: s.max, max: s.max },
      notes: [
        "store-level query latency (no peers); p999 shown as max: bench/history.ts keeps 2,000 samples",
      ],
    }),
  );
}
