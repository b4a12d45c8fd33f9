// The connections scenario: as many authenticated idle WebSockets as the machine allows (aim 100,000), opened in
// steps from separate generator processes (loadgen/idle.ts) over several loopback source addresses, with the
// server's RSS per connection. Parley runs its full path (bearer token, session check, hello); the bare Bun
// ceiling and ws take the same raw sockets with no auth, Socket.IO the same over Engine.IO (its namespace
// joined, its pings answered). A run stops at the first step that fails, at the servers' file-descriptor
// ceiling, when their RSS passes half of the machine's memory, or at the time budget.
// Where one process may not hold the aim (its open-file limit, `ulimit -n`, is lower and cannot be raised),
// each target runs as several processes on one port (REUSE_PORT; Parley's joined through Redis and one
// DATA_DIR), as a host would be deployed, and the figures are theirs together; Node.js 20 cannot share a
// port, so ws and Socket.IO run as processes on ports of their own, the sockets spread over them.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { join } from "node:path";
import { BEARER_PREFIX } from "../../src/realtime/frames.ts";
import { type Child, cpuSeconds, freePort, lines, spawn, stop } from "../lib/proc.ts";
import { benchRedisUrl, checkRedis } from "../lib/redis.ts";
import { CONNECTIONS_AIM as AIM } from "../lib/render.ts";
import { type Cluster, startTarget, TARGETS, type Target, type TargetName } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import { failedResult } from "../loadgen/run.ts";

const USERS = 50;
/**
 * 127.0.0.2..33: each source address has its own ~28k ephemeral ports. A client that binds its source address
 * gets its port from bind(), which slows down sharply once about half of an address's ports are taken
 * (8 addresses: 12,500 sockets each at 100,000, ~500 connects/s); 32 keep each under 3,200.
 */
const SOURCES = Array.from({ length: 32 }, (_, i) => `127.0.0.${i + 2}`);
/**
 * In-flight handshakes over all generator processes: under the 512 a server process's listen queue takes
 * (uWS's backlog), past which the kernel drops handshakes and clients retry them a second or more later.
 */
const IN_FLIGHT = 256;
/** File descriptors kept free for the server's own files, database and listener. */
const FD_HEADROOM = 500;
const SETTLE_MS = 1_000;
const FULL_STEPS = [5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000];
/** A node's expected share of the aim, against its fd limit: the kernel spreads connections by a hash. */
const SHARE_MARGIN = 0.9;
const QUICK_STEPS = [1_000, 2_000];
/** How long the sockets stay idle after the last step before RSS is read again. */
const FULL_IDLE_MS = 15_000;
const QUICK_IDLE_MS = 1_000;

/** The soft "Max open files" of a process, from /proc (NaN where /proc is missing). */
function fdLimit(pid: number | "self"): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface Opened {
  ready: number;
  failed: number;
  held: number;
  dropped: number;
  ms: number;
  cpu_s: number;
  errors: string[];
}

interface Run {
  target: string;
  /** The target's server processes, all listening on `port` (or each on its conns' own). */
  pids: number[];
  port: number;
  conns: Array<{ path: string; token?: string; port: number }>;
  expectHello: boolean;
  socketio: boolean;
}

async function measure(
  run: Run,
  opts: { quick: boolean; log: (line: string) => void; budgetMs: number },
): Promise<ScenarioResult> {
  const { quick, log } = opts;
  const idleMs = quick ? QUICK_IDLE_MS : FULL_IDLE_MS;
  const notes: string[] = [];
  const serverFds = Math.min(...run.pids.map(fdLimit));
  const ownFds = fdLimit("self");
  // A server process holds one fd per socket; a generator too, so each generator takes at most its own
  // limit's share. Several server processes on one port share the sockets out by the kernel's hash.
  const processes = run.pids.length;
  const ceiling = Number.isFinite(serverFds)
    ? processes === 1
      ? serverFds - FD_HEADROOM
      : Math.floor((serverFds - FD_HEADROOM) * processes * SHARE_MARGIN)
    : AIM;
  const rssOf = () => run.pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
  const cpuOf = () => run.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const planned = quick ? QUICK_STEPS : FULL_STEPS;
  const steps = planned.filter((s) => s < ceiling);
  if (steps.length < planned.length && ceiling > (steps.at(-1) ?? 0)) steps.push(ceiling);
  if (!quick && ceiling < AIM)
    notes.push(
      `server fd limit (ulimit -n) is ${serverFds} per process (${processes} of them): steps capped at ${ceiling} ` +
        `sockets, under the aim of ${AIM}; raise \`ulimit -n\` in the shell that runs the bench (the servers ` +
        "and the generators inherit it)",
    );
  const ports = new Set(run.conns.map((c) => c.port)).size;
  if (processes > 1)
    notes.push(
      (ports > 1
        ? `${processes} server processes on ports of their own (Node.js 20 cannot share one), the sockets spread over them: `
        : `${processes} server processes share the port (REUSE_PORT): `) +
        `one may hold at most ${serverFds - FD_HEADROOM} sockets (ulimit -n); RSS and CPU are theirs together`,
    );
  const maxStep = steps.at(-1) ?? 0;
  const perGenFds = Number.isFinite(ownFds) ? ownFds - FD_HEADROOM : maxStep;
  const generators = Math.max(2, Math.ceil(maxStep / perGenFds));
  const rssStop = totalmem() / 2;
  const inFlight = Math.ceil(IN_FLIGHT / generators);

  const gens: Child[] = [];
  const readers: Array<ReturnType<typeof lines>> = [];
  const totals = { cpu: [] as number[] };
  let held = 0;
  let connectMs = 0;
  let connected = 0;
  const stepLog: string[] = [];
  const t0 = Date.now();
  try {
    const config = (g: number) =>
      JSON.stringify({
        port: run.port,
        // Rotated per generator so that users spread evenly over processes; every generator uses every source.
        conns: [...run.conns.slice(g % run.conns.length), ...run.conns.slice(0, g % run.conns.length)],
        sources: SOURCES,
        concurrency: inFlight,
        expectHello: run.expectHello,
        socketio: run.socketio,
      });
    for (let g = 0; g < generators; g++) {
      const child = spawn([
        process.execPath,
        "run",
        join(import.meta.dir, "..", "loadgen", "idle.ts"),
        config(g),
      ]);
      gens.push(child);
      readers.push(lines(child));
      totals.cpu.push(0);
    }
    await Bun.sleep(SETTLE_MS);
    const rssBefore = rssOf();
    const cpuBefore = cpuOf();
    let rssAfter = rssBefore;
    let stopReason =
      steps.length < planned.length ? "all steps passed up to the fd limit" : "all steps passed";
    for (const step of steps) {
      const remaining = opts.budgetMs - (Date.now() - t0);
      if (remaining <= 0) {
        stopReason = `time budget of ${opts.budgetMs / 1000} s used up before the step to ${step}`;
        break;
      }
      const more = step - held;
      const shares = gens.map((_, g) => Math.floor(more / generators) + (g < more % generators ? 1 : 0));
      const ts = performance.now();
      const answers = await Promise.all(
        gens.map(async (child, g) => {
          child.stdin.write(`${JSON.stringify({ op: "open", count: shares[g], timeoutMs: remaining })}\n`);
          child.stdin.flush();
          return JSON.parse(
            await (readers[g] as ReturnType<typeof lines>).next(remaining + 10_000, `generator ${g}`),
          ) as Opened;
        }),
      );
      const wall = performance.now() - ts;
      const ready = answers.reduce((a, o) => a + o.ready, 0);
      const failed = answers.reduce((a, o) => a + o.failed, 0);
      answers.forEach((o, g) => {
        totals.cpu[g] = (totals.cpu[g] ?? 0) + o.cpu_s;
      });
      await Bun.sleep(SETTLE_MS);
      const nowHeld = answers.reduce((a, o) => a + o.held, 0);
      const rss = rssOf();
      const rate = ready / (wall / 1000);
      stepLog.push(
        `${step}: ${ready}/${more} new in ${(wall / 1000).toFixed(1)} s (${Math.round(rate)}/s), held ${nowHeld}, ` +
          `RSS ${(rss / 2 ** 20).toFixed(0)} MiB`,
      );
      log(`connections ${run.target}: step ${stepLog.at(-1)}`);
      if (ready > 0) {
        connected += ready;
        connectMs += wall;
      }
      if (failed > 0 || nowHeld < step) {
        const errs = [...new Set(answers.flatMap((o) => o.errors))].slice(0, 3);
        stopReason = `step to ${step} failed: ${failed} of ${more} did not connect, ${nowHeld} held (${errs.join("; ")})`;
        held = nowHeld;
        if (nowHeld > 0) rssAfter = rss;
        break;
      }
      held = nowHeld;
      rssAfter = rss;
      if (rss > rssStop) {
        stopReason = `servers' RSS ${(rss / 2 ** 30).toFixed(1)} GiB passed half of the machine's memory`;
        break;
      }
    }
    // The sockets held idle for a while, as an app's mostly are: the connect storm's garbage may be
    // collected by then (no collection is forced: the servers are measured as they run). Then ask again
    // what is still held (a server-side close shows here).
    await Bun.sleep(idleMs);
    const rssIdle = held > 0 ? rssOf() : Number.NaN;
    const still = await Promise.all(
      gens.map(async (child, g) => {
        child.stdin.write(`${JSON.stringify({ op: "held" })}\n`);
        child.stdin.flush();
        return JSON.parse(await (readers[g] as ReturnType<typeof lines>).next(10_000, `generator ${g}`)) as {
          held: number;
          dropped: number;
        };
      }),
    );
    const finalHeld = still.reduce((a, o) => a + o.held, 0);
    const dropped = still.reduce((a, o) => a + o.dropped, 0);
    const wallS = (Date.now() - t0) / 1000;
    const serverCpu = ((cpuOf() - cpuBefore) / wallS) * 100;
    notes.push(`stop: ${stopReason}`, ...stepLog.map((s) => `step ${s}`));
    return {
      scenario: "connections",
      target: run.target,
      settings: {
        steps: steps.join(","),
        generators,
        source_addresses: SOURCES.length,
        users: run.conns.length,
        in_flight_per_generator: inFlight,
        server_processes: processes,
        server_fd_limit: serverFds,
        generator_fd_limit: ownFds,
        auth: run.expectHello
          ? "bearer + session check + hello"
          : run.socketio
            ? "none (Engine.IO 4)"
            : "none",
      },
      metrics: {
        connections_held: finalHeld,
        connections_dropped: dropped,
        rss_before_bytes: rssBefore,
        rss_after_bytes: rssAfter,
        rss_per_conn_bytes: held > 0 ? Math.round((rssAfter - rssBefore) / held) : Number.NaN,
        idle_s: idleMs / 1000,
        rss_idle_bytes: rssIdle,
        rss_per_conn_idle_bytes: held > 0 ? Math.round((rssIdle - rssBefore) / held) : Number.NaN,
        connect_per_s: connectMs > 0 ? Math.round(connected / (connectMs / 1000)) : 0,
        server_cpu_pct: Math.round(serverCpu),
      },
      generator_cpu_pct: Math.round((Math.max(...totals.cpu) / (connectMs / 1000 || 1)) * 100),
      notes,
    };
  } finally {
    await Promise.all(
      gens.map(async (child, g) => {
        try {
          child.stdin.write(`${JSON.stringify({ op: "close" })}\n`);
          child.stdin.flush();
          // Its sockets reset before it is stopped: killed, it would leave them to the kernel's FIN close.
          await (readers[g] as ReturnType<typeof lines>).next(10_000, `generator ${g} close`);
        } catch {}
        await stop(child, 3_000);
      }),
    );
  }
}

/**
 * How many server processes each target runs: one, unless one process may not hold the aim (its fd limit,
 * which the servers inherit from this process). Then enough to hold it on one port, joined through Redis; if
 * Redis does not answer, one, with a note.
 */
async function serverProcesses(
  quick: boolean,
  notes: string[],
): Promise<Pick<Cluster, "nodes" | "redisUrl"> | undefined> {
  const perProcess = fdLimit("self") - FD_HEADROOM;
  if (quick || !Number.isFinite(perProcess) || perProcess >= AIM) return undefined;
  const nodes = Math.ceil(AIM / (perProcess * SHARE_MARGIN));
  const redisUrl = benchRedisUrl();
  try {
    await checkRedis(redisUrl);
  } catch (err) {
    notes.push(`one server process per target, capped by its fd limit: ${err}`);
    return undefined;
  }
  return { nodes, redisUrl };
}

export const connections: Scenario = ({ quick, log }) => connectionsOf(TARGETS, { quick, log });

/**
 * The scenario over `names`, each started by `start` (a test's stand-in may fail one). A target that fails
 * to start or to be measured is a row saying so, and the targets after it are still measured.
 */
export async function connectionsOf(
  names: readonly TargetName[],
  { quick, log }: { quick: boolean; log: (line: string) => void },
  start: typeof startTarget = startTarget,
): Promise<ScenarioResult[]> {
  const budgetMs = quick ? 45_000 : 120_000;
  const results: ScenarioResult[] = [];
  log(`connections: fd limit (ulimit -n) of this process ${fdLimit("self")}`);
  const notes: string[] = [];
  const shared = await serverProcesses(quick, notes);
  const runTag = randomBytes(4).toString("hex");
  for (const name of names) {
    const cluster = shared && { ...shared, port: freePort(), prefix: `parley-bench-${runTag}-${name}-conns` };
    log(
      `connections: ${name}: starting ${cluster ? `${cluster.nodes} processes${name === "parley" || name === "bare-bun" ? " on one port" : ""}` : "one process"}`,
    );
    let target: Target | undefined;
    try {
      target = await start(name, cluster);
      // Parley: USERS accounts written straight to its database (bench/lib/seed.ts), their sockets spread
      // over them; the peers take any socket, one user per node (for ws and Socket.IO, each node's port).
      const nodes = target.pids.length;
      const prepared = await target.prepare(name === "parley" ? USERS : nodes, [], (u) =>
        name === "parley" ? 0 : u % nodes,
      );
      const socketio = prepared.mode === "socketio";
      const conns = prepared.conns.map((c) => {
        const url = new URL(c.url);
        const bearer = c.protocols?.find((p) => p.startsWith(BEARER_PREFIX));
        const path = socketio
          ? `/socket.io/?EIO=4&transport=websocket&${new URLSearchParams(c.query).toString()}`
          : `${url.pathname}${url.search}`;
        return { path, token: bearer?.slice(BEARER_PREFIX.length), port: Number(url.port) };
      });
      const port = conns[0]?.port ?? 0;
      const result = await measure(
        { target: name, pids: target.pids, port, conns, expectHello: prepared.expectHello, socketio },
        { quick, log, budgetMs },
      );
      result.notes?.push(...notes);
      const problems = target.problems();
      if (problems.length) result.notes?.push(`server log: ${problems.slice(-3).join(" | ")}`);
      results.push(result);
    } catch (err) {
      log(`connections: ${name}: FAILED ${err}`);
      results.push(failedResult("connections", name, { server_processes: cluster?.nodes ?? 1 }, err));
    } finally {
      await target?.stop();
    }
  }
  return results;
}
