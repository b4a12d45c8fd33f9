// History paging as a suite scenario: runs bench/history.ts in its own process (50,000 messages in quick
// mode, its default 1,000,000 otherwise) and turns its history-latest.json into result rows.

import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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
    return await runHistory(messages, quick, log);
  } finally {
    for (const f of readdirSync(RESULTS))
      if (!before.has(f) && f.startsWith("history-")) rmSync(join(RESULTS, f));
    writeFileSync(LATEST, kept);
  }
};

async function runHistory(messages: number, quick: boolean, log: (line: string) => void) {
  log(`history: filling ${messages} messages`);
  const child = Bun.spawn(
    [process.execPath, "run", join(import.meta.dir, "..", "history.ts"), "--messages", String(messages)],
    {
      stdout: "ignore",
      stderr: "ignore",
    },
  );
  const timer = setTimeout(() => child.kill("SIGKILL"), quick ? 120_000 : 900_000);
  const code = await child.exited;
  clearTimeout(timer);
  if (child.signalCode) throw new Error(`history bench killed (${child.signalCode})`);
  const data = JSON.parse(readFileSync(LATEST, "utf8")) as HistoryJson;
  if (data.messages !== messages)
    throw new Error(`history-latest.json is from a run of ${data.messages} messages`);
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
