// What the resume storm's two sides share (resume.ts for Parley, resume-socketio.ts for Socket.IO): the
// storm's size, and asking every generator process a command and gathering their replies.

import { envInt } from "../lib/env.ts";
import { Histogram } from "../lib/histogram.ts";
import type { Child, lines } from "../lib/proc.ts";
import { sendLine } from "../lib/proc.ts";
import type { ErrorReply } from "../loadgen/resume-protocol.ts";

export const GROUP_SIZE = 100;
/** Connects in flight at setup, over all generator processes together. */
export const SETUP_CONCURRENCY = 200;
export const MUTATION_CONCURRENCY = 16;
export const SETTLE_MS = 500;
const DEFAULT_GENERATORS = 2;
export const now = () => performance.timeOrigin + performance.now();

/** The storm's size: clients, groups and the changes each group gets while its clients are away. */
export function plan(quick: boolean) {
  const clients = quick ? 500 : 5_000;
  const perGroup = quick ? 100 : 200;
  const groups = Math.ceil(clients / GROUP_SIZE);
  return {
    clients,
    perGroup,
    groups,
    edits: Math.floor(perGroup / 10),
    deletes: Math.floor(perGroup / 20),
    timeoutMs: quick ? 60_000 : 180_000,
    generatorCount: Math.min(groups, envInt("BENCH_RESUME_GENERATORS", DEFAULT_GENERATORS, 1)),
  };
}

/** A generator process and its line reader. */
export interface Worker {
  child: Child;
  reader: ReturnType<typeof lines>;
}

/** Sends each generator its command and waits for every reply; a worker's error reply throws here. */
export async function askAll<R, W extends Worker>(
  generators: W[],
  ms: number,
  what: string,
  cmd: (gen: W) => unknown,
): Promise<R[]> {
  for (const gen of generators) sendLine(gen.child, cmd(gen));
  return Promise.all(
    generators.map(async (gen, w) => {
      const reply = JSON.parse(await gen.reader.next(ms, `${what} (generator ${w + 1})`)) as R | ErrorReply;
      if (reply && typeof reply === "object" && "error" in reply)
        throw new Error(`${what} (generator ${w + 1}): ${reply.error}`);
      return reply as R;
    }),
  );
}

/** What every storm's generator process reports at the finish, for its own clients. */
export interface StormCounts {
  /** Per client: ms from the storm's start to caught up, or null. */
  caughtUpMs: Array<number | null>;
  lastConnectedMs: number;
  lost: number;
  duplicated: number;
  clientsWithLoss: number;
  delivered: number;
}

const r1 = (n: number) => Math.round(n * 10) / 10;

/** The generators' counts merged into the figures every storm's row gives, and its caught-up histogram. */
export function stormFigures(finished: StormCounts[], allCaughtUp: boolean, wallSeconds: number) {
  const sum = (f: (r: StormCounts) => number) => finished.reduce((n, r) => n + f(r), 0);
  const histogram = new Histogram();
  let lastMs = 0;
  let caughtUp = 0;
  for (const r of finished)
    for (const ms of r.caughtUpMs) {
      if (ms === null) continue;
      histogram.record(ms);
      lastMs = Math.max(lastMs, ms);
      caughtUp++;
    }
  const delivered = sum((r) => r.delivered);
  return {
    histogram,
    caughtUp,
    lastMs,
    metrics: {
      caught_up_s: r1(allCaughtUp ? lastMs / 1000 : wallSeconds),
      all_connected_s: Math.round(Math.max(...finished.map((r) => r.lastConnectedMs))) / 1000,
      clients_caught_up: caughtUp,
      lost: sum((r) => r.lost),
      duplicated: sum((r) => r.duplicated),
      clients_with_loss: sum((r) => r.clientsWithLoss),
      changes_replayed: delivered,
      changes_replayed_per_s: Math.round(delivered / wallSeconds),
    },
  };
}
