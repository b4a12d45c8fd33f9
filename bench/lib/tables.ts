// RESULTS.md's tables for the scenarios that count no deliveries (bench/scenarios/rest.ts, connections.ts,
// resume.ts): each target's figures side by side, with Parley's ratio to each.

import { kib, num, ratio, table } from "./format.ts";
import type { ScenarioResult } from "./types.ts";

/**
 * The rows' notes as list items under a table, each named by its target and said once (the rest scenario's
 * notes of a target repeat on each of its operations' rows); `keep` leaves some to the JSON.
 */
function notesOf(rows: ScenarioResult[], keep: (note: string) => boolean = () => true): string[] {
  return [...new Set(rows.flatMap((r) => (r.notes ?? []).filter(keep).map((n) => `- ${r.target}: ${n}`)))];
}

/**
 * The rest scenario: per operation, every target's requests/s and latency, and Parley's ratios to each
 * (bench/scenarios/rest.ts).
 */
export function restComparison(rows: ScenarioResult[]): string {
  const operations = [...new Set(rows.map((r) => String(r.settings.operation)))];
  const body: string[][] = [];
  for (const operation of operations) {
    const of = rows.filter((r) => String(r.settings.operation) === operation);
    const parley = of.find((r) => r.target === "parley");
    for (const r of of)
      body.push([
        operation,
        r.target,
        num(r.metrics.ops_per_s, 1),
        num(r.latency?.p50, 2),
        num(r.latency?.p90, 2),
        num(r.latency?.p99, 2),
        num(r.latency?.max, 2),
        num(r.metrics.server_cpu_pct),
        num(r.generator_cpu_pct),
        r.target === "parley" ? "1.00×" : ratio(parley?.metrics.ops_per_s, r.metrics.ops_per_s),
        r.target === "parley" ? "1.00×" : ratio(parley?.latency?.p99, r.latency?.p99),
      ]);
  }
  const first = rows.find((r) => r.settings.seconds !== undefined);
  const signin = rows.find((r) => r.settings.operation === "signin" && r.settings.seconds !== undefined);
  const signinNote =
    signin && signin.settings.seconds !== first?.settings.seconds
      ? ` (sign-ins ${String(signin.settings.seconds)} s)`
      : "";
  const settings = first
    ? `Settings: ${String(first.settings.seconds)} s per operation${signinNote}, ${String(first.settings.concurrency)} requests in flight${first.settings.generators ? ` from ${String(first.settings.generators)} generator processes` : ""}, ${String(first.settings.users)} users in one conversation.`
    : "";
  const notes = notesOf(rows);
  return [
    "### rest",
    "",
    settings,
    "Parley (one process, its full path: auth, validation, idempotency, a durable write before the answer) " +
      "against the REST ceiling (bare Bun.serve: no auth, validation or storage; messages in memory) and " +
      "Node.js with Express 5 (JWT auth, messages in memory). The same raw fetch client sends the same " +
      "requests to each; gen CPU is the busiest generator process's (before 2026-12-06 01:10 the bench " +
      "process itself was the one generator). Every sign-in checks an argon2id hash of Parley's cost, " +
      "tens of ms of CPU on purpose (against password guessing): sign-ins/s are the cores', not a request path's.",
    "",
    table(
      [
        "operation",
        "target",
        "requests/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "server CPU %",
        "gen CPU %",
        "Parley/this thr",
        "Parley/this p99",
      ],
      body,
    ),
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}

/** The connections scenario: sockets held by each target, their RSS each, and Parley's ratios to each. */
export function connectionsComparison(rows: ScenarioResult[]): string {
  const parley = rows.find((r) => r.target === "parley");
  // The idle figure where the run has it (since 2026-12-06): the state sockets spend their lives in.
  const settled = (r: ScenarioResult | undefined) =>
    r?.metrics.rss_per_conn_idle_bytes ?? r?.metrics.rss_per_conn_bytes;
  const pRss = settled(parley);
  const pRate = parley?.metrics.connect_per_s;
  const idle = rows.find((r) => r.metrics.idle_s !== undefined)?.metrics.idle_s;
  const body = rows.map((r) => [
    r.target,
    num(r.metrics.connections_held),
    num(r.metrics.connections_dropped),
    num(kib(r.metrics.rss_per_conn_bytes), 1),
    num(kib(r.metrics.rss_per_conn_idle_bytes), 1),
    num(r.metrics.connect_per_s),
    num(r.metrics.server_cpu_pct),
    num(r.settings.server_processes as number | undefined),
    String(r.settings.auth ?? "–"),
    // Parley's over the row's, as everywhere: for memory, as for a p99, lower is better for Parley.
    r.target === "parley" ? "1.00×" : ratio(pRss, settled(r)),
    r.target === "parley" ? "1.00×" : ratio(pRate, r.metrics.connect_per_s),
  ]);
  // Each step's figures stay in the JSON; the table says how each target's run ended.
  const notes = notesOf(rows, (n) => !n.startsWith("step "));
  return [
    "### connections",
    "",
    "Idle WebSockets held, opened in steps; the servers' RSS per socket (KiB) is read right after the last " +
      "step, with the connect storm's garbage, and again after the sockets have been idle" +
      (idle === undefined ? "" : ` ${num(idle)} s`) +
      " (no collection forced); the RSS ratio is of the idle figure. Parley's sockets are authenticated " +
      "(bearer token, session check, hello); the peers' are not.",
    "",
    table(
      [
        "target",
        "held",
        "dropped",
        "RSS per socket",
        "idle RSS per socket",
        "connects/s",
        "server CPU %",
        "processes",
        "auth",
        "Parley/this RSS",
        "Parley/this connects",
      ],
      body,
    ),
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}

/** The resume storm: time to caught up, what was lost or duplicated, and Parley's ratio to each target. */
export function resumeComparison(rows: ScenarioResult[]): string {
  const parley = rows.find((r) => r.target === "parley");
  const body = rows.map((r) => [
    r.target,
    num(r.metrics.clients_caught_up),
    num(r.metrics.caught_up_s, 1),
    num(r.metrics.all_connected_s, 1),
    num(r.metrics.lost),
    num(r.metrics.duplicated),
    num(r.metrics.changes_replayed),
    num(r.latency?.p50, 0),
    num(r.latency?.p99, 0),
    num(r.metrics.server_cpu_pct),
    num(r.generator_cpu_pct),
    // Parley's over the row's: a shorter time is better for Parley, as for a p99.
    r.target === "parley" ? "1.00×" : ratio(parley?.metrics.caught_up_s, r.metrics.caught_up_s),
  ]);
  const first = rows.find((r) => r.settings.clients !== undefined);
  const settings = first
    ? `Settings: ${String(first.settings.clients)} clients in groups of ${String(first.settings.group_size)}; ` +
      `while they are away each group gets ${String(first.settings.messages_per_group)} messages, ` +
      `${String(first.settings.edits_per_group)} edits and ${String(first.settings.deletes_per_group)} deletes.`
    : "";
  const notes = notesOf(rows);
  return [
    "### resume storm",
    "",
    settings,
    "Parley's SDK clients resume from their last seq; Socket.IO's clients from the offset of their last packet " +
      "(its connection state recovery). Caught up: a client has every change it missed; per-client times " +
      "from the storm's start.",
    "",
    table(
      [
        "target",
        "caught up",
        "all caught up s",
        "all connected s",
        "lost",
        "duplicated",
        "replayed",
        "p50 ms",
        "p99 ms",
        "server CPU %",
        "gen CPU %",
        "Parley/this time",
      ],
      body,
    ),
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}
