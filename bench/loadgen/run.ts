// The parent side of the load generator: spawns worker processes, hands each its share of the sockets, runs
// phases on all of them at once and merges their histograms and counters into one result.

import { join } from "node:path";
import { envInt } from "../lib/env.ts";
import { Histogram } from "../lib/histogram.ts";
import { type Child, cpuSeconds, lines, quit, rssMiB, sendLine, spawn } from "../lib/proc.ts";
import { ackNote, type WindowProbe, type WindowQuantiles } from "../lib/server-metrics.ts";
import type { Prepared } from "../lib/targets.ts";
import type { ScenarioResult } from "../lib/types.ts";
import {
  type Command,
  DRAIN_CAP_MS,
  type PhaseCommand,
  type PhaseReply,
  type ReadyReply,
  type SenderSpec,
} from "./protocol.ts";

export interface PhaseResult {
  sent: number;
  received: number;
  sentPerSec: number;
  deliveriesPerSec: number;
  hist: Histogram;
  /** The busiest generator process (100 = one core). */
  generatorCpuPct: number;
  /** Every server process together (both nodes of a cross-node target). */
  serverCpuPct: number;
  /** Each server process, in the order given to openLoad. */
  serverCpuPcts: number[];
  /** The other processes watched (cross-node: redis-server), by name. */
  otherCpuPct: Record<string, number>;
  serverRssMiB: number;
  acks: number;
  errors: number;
  /** Sockets closed in this phase (or between the one before and this one), every generator together. */
  closed: number;
  closeCodes: Record<string, number>;
  stalls: number;
  /** The slowest generator's wait for deliveries to stop after the phase (its backlog draining). */
  drainMs: number;
  /** What the phase's probe read of the server over the measured window (Parley's ack times). */
  probed?: WindowQuantiles;
  /** Deliveries that arrived after sending stopped, every generator together. */
  late: number;
}

export interface Load {
  workerOf(conn: number): number;
  phase(
    senders: SenderSpec[],
    timing: { warmupMs: number; measureMs: number; drainMs: number },
    probe?: WindowProbe,
  ): Promise<PhaseResult>;
  close(): Promise<void>;
}

const WORKER = join(import.meta.dir, "worker.ts");

/**
 * Opens every connection of `prepared` across `workers` processes; `assign` maps a user to a worker. A phase
 * reports the CPU of the server's process (or of each node's) and of the `others` named there.
 */
export async function openLoad(
  prepared: Prepared,
  server: number | readonly number[],
  workers: number,
  assign: (conn: number) => number = (i) => i % workers,
  others: Record<string, number> = {},
): Promise<Load> {
  const serverPids = typeof server === "number" ? [server] : [...server];
  const watched = [...serverPids, ...Object.values(others)];
  const children: Child[] = [];
  const close = async () => {
    await Promise.all(children.map(quit));
  };
  try {
    const readers: Array<ReturnType<typeof lines>> = [];
    for (let w = 0; w < workers; w++) {
      const child = spawn([process.execPath, "run", WORKER]);
      children.push(child);
      readers.push(lines(child));
    }
    const shares = children.map((_, w) =>
      prepared.conns.map((spec, index) => ({ index, spec })).filter(({ index }) => assign(index) === w),
    );
    children.forEach((c, w) => {
      send(c, { init: { mode: prepared.mode, expectHello: prepared.expectHello, conns: shares[w] ?? [] } });
    });
    const readies = await Promise.all(
      readers.map(async (r) => JSON.parse(await r.next(120_000, "loadgen connect")) as ReadyReply),
    );
    const failed = readies.reduce((n, r) => n + r.failed, 0);
    if (failed > 0)
      throw new Error(`${failed} sockets failed to open: ${readies.find((r) => r.firstError)?.firstError}`);
    return {
      workerOf: assign,
      async phase(senders, timing, probe) {
        children.forEach((c, w) => {
          const mine = senders.filter((s) => assign(s.conn) === w);
          send(c, { phase: { senders: mine, ...timing } } satisfies PhaseCommand);
        });
        await Bun.sleep(timing.warmupMs);
        await probe?.start();
        const cpu0 = watched.map(cpuSeconds);
        const t0 = performance.now();
        await Bun.sleep(timing.measureMs);
        const wall = (performance.now() - t0) / 1000;
        const cpuPct = watched.map((pid, i) =>
          round1(((cpuSeconds(pid) - (cpu0[i] as number)) / wall) * 100),
        );
        const serverCpuPcts = cpuPct.slice(0, serverPids.length);
        const serverRss = serverPids.reduce((n, pid) => n + rssMiB(pid), 0);
        const probed = await probe?.end();
        // The generators wait for a backlog to drain (DRAIN_CAP_MS at most), then reply.
        const budget = timing.warmupMs + timing.measureMs + timing.drainMs + DRAIN_CAP_MS + 30_000;
        const replies = await Promise.all(
          readers.map(async (r) => JSON.parse(await r.next(budget, "loadgen phase")) as PhaseReply),
        );
        const hist = new Histogram();
        for (const r of replies) hist.merge(r.hist);
        const seconds = Math.max(...replies.map((r) => r.measureMs)) / 1000;
        const sum = (f: (r: PhaseReply) => number) => replies.reduce((n, r) => n + f(r), 0);
        const closeCodes: Record<string, number> = {};
        for (const r of replies)
          for (const [k, v] of Object.entries(r.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
        return {
          sent: sum((r) => r.sent),
          received: sum((r) => r.received),
          sentPerSec: sum((r) => r.sent) / seconds,
          deliveriesPerSec: sum((r) => r.received) / seconds,
          hist,
          generatorCpuPct: Math.max(...replies.map((r) => r.cpuPct)),
          serverCpuPct: round1(serverCpuPcts.reduce((n, pct) => n + pct, 0)),
          serverCpuPcts,
          otherCpuPct: Object.fromEntries(
            Object.keys(others).map((name, i) => [name, cpuPct[serverPids.length + i] as number]),
          ),
          serverRssMiB: round1(serverRss),
          acks: sum((r) => r.acks),
          errors: sum((r) => r.errors),
          closed: sum((r) => r.closed),
          closeCodes,
          stalls: sum((r) => r.stalls),
          drainMs: Math.max(...replies.map((r) => r.drainMs)),
          ...(probed ? { probed } : {}),
          late: sum((r) => r.late),
        };
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10;

const send = (child: Child, cmd: Command) => sendLine(child, cmd);

/** The row of a target whose run threw: no figures, the error as its note. */
export function failedResult(
  scenario: string,
  target: string,
  settings: ScenarioResult["settings"],
  err: unknown,
): ScenarioResult {
  return { scenario, target, settings, metrics: {}, notes: [`failed: ${err}`] };
}

/** One phase as a ScenarioResult row, with what a reader needs to trust it (closes, errors, stalls) as notes. */
export function toResult(
  scenario: string,
  target: string,
  settings: Record<string, unknown>,
  r: PhaseResult,
  extra: Record<string, number> = {},
): ScenarioResult {
  const notes: string[] = [];
  if (r.closed > 0)
    notes.push(`${r.closed} sockets closed during this phase: ${JSON.stringify(r.closeCodes)}`);
  if (r.errors > 0) notes.push(`${r.errors} error frames`);
  if (r.stalls > 0) notes.push(`${r.stalls} closed-loop stalls (no receipt for 2 s; window reset)`);
  if (r.generatorCpuPct > 90) notes.push(`load generator near saturation (${r.generatorCpuPct}% of a core)`);
  if (r.received === 0) notes.push("0 deliveries in the measured window: no receiver got a message");
  if (r.probed) notes.push(ackNote(r.probed));
  if (r.drainMs >= DRAIN_CAP_MS)
    notes.push(
      `deliveries still arriving ${DRAIN_CAP_MS / 1000} s after the phase: the next one met its backlog`,
    );
  return {
    scenario,
    target,
    settings,
    metrics: {
      deliveries_per_s: round1(r.deliveriesPerSec),
      messages_per_s: round1(r.sentPerSec),
      server_cpu_pct: r.serverCpuPct,
      server_rss_mib: r.serverRssMiB,
      closed_sockets: r.closed,
      error_frames: r.errors,
      drain_ms: r.drainMs,
      late_deliveries: r.late,
      ...(r.probed
        ? {
            server_ack_count: r.probed.count,
            server_ack_p50_le_ms: r.probed.p50_le_ms,
            server_ack_p99_le_ms: r.probed.p99_le_ms,
          }
        : {}),
      ...extra,
    },
    ...(r.received > 0 ? { latency: r.hist.summary() } : {}),
    generator_cpu_pct: r.generatorCpuPct,
    ...(notes.length ? { notes } : {}),
  };
}

/** A phase's measured window: the scenario's default, or BENCH_MEASURE_MS (a longer window shows rarer stalls). */
export const measureMs = (fallback: number): number => envInt("BENCH_MEASURE_MS", fallback, 100);
