// The resume storm against Socket.IO 4 with its connection state recovery, the one resume among what users
// would pick instead (ws has none): the same clients, groups and changes as Parley's storm (resume.ts).

import { join } from "node:path";
import { listenDrops, listenDropsNote, listenDropsSince } from "../lib/netstat.ts";
import { cpuSeconds, lines, PEER_ENV, pool, quit, rssMiB, spawn, stop } from "../lib/proc.ts";
import { seeded, sentence } from "../lib/random.ts";
import type { ScenarioResult } from "../lib/types.ts";
import type { SocketioCommand, SocketioFinish } from "../loadgen/resume-socketio.ts";
import {
  askAll,
  GROUP_SIZE,
  MUTATION_CONCURRENCY,
  now,
  plan,
  SETTLE_MS,
  SETUP_CONCURRENCY,
  stormFigures,
  type Worker,
} from "./storm.ts";

const SOCKETIO_WORKER = join(import.meta.dir, "..", "loadgen", "resume-socketio.ts");
const SOCKETIO_PEER = join(import.meta.dir, "..", "peers", "socketio.mjs");

type SioGenerator = Worker & { groups: number[]; members: Array<{ index: number; group: number }> };
const ask = <R>(
  gens: SioGenerator[],
  ms: number,
  what: string,
  cmd: (gen: SioGenerator) => SocketioCommand,
) => askAll<R, SioGenerator>(gens, ms, what, cmd);

/**
 * The same storm against Socket.IO 4 with its connection state recovery (peers/socketio.mjs, RECOVERY_MS):
 * the clients (loadgen/resume-socketio.ts) join their group's room and get one packet each (an offset to
 * resume from), lose their connections, the groups' messages, edits and deletes are emitted to the rooms
 * (a sender client; edits and deletes are events like the messages, Socket.IO has no log to change), and
 * all reconnect at once. Caught up: a client has every one of its group's packets.
 */
export async function socketioStorm(quick: boolean, log: (line: string) => void): Promise<ScenarioResult> {
  const p = plan(quick);
  const changes = p.perGroup + p.edits + p.deletes;
  const settings = {
    clients: p.clients,
    groups: p.groups,
    group_size: GROUP_SIZE,
    messages_per_group: p.perGroup,
    edits_per_group: p.edits,
    deletes_per_group: p.deletes,
    timeout_s: p.timeoutMs / 1000,
    generators: p.generatorCount,
    recovery: "connectionStateRecovery, in memory",
  };
  const notes: string[] = [];
  const server = spawn(["node", SOCKETIO_PEER], {
    ...PEER_ENV,
    NODE_ENV: "production",
    REDIS_URL: "",
    RECOVERY_MS: String(p.timeoutMs + 120_000),
  });
  const generators: SioGenerator[] = [];
  const { io } = await import("socket.io-client");
  let sender: ReturnType<typeof io> | undefined;
  try {
    const { port } = JSON.parse(await lines(server).next(15_000, "socketio start")) as { port: number };
    const url = `http://127.0.0.1:${port}`;
    for (let w = 0; w < p.generatorCount; w++) {
      const child = spawn([process.execPath, "run", SOCKETIO_WORKER]);
      const groups = Array.from({ length: p.groups }, (_, g) => g).filter((g) => g % p.generatorCount === w);
      const members = Array.from({ length: p.clients }, (_, index) => ({
        index,
        group: Math.floor(index / GROUP_SIZE),
      })).filter(({ group }) => groups.includes(group));
      generators.push({ child, reader: lines(child), groups, members });
    }
    log(`resume: socketio: connecting ${p.clients} clients from ${p.generatorCount} generator processes`);
    const inits = await ask<{ connectMs: number }>(generators, 120_000, "socketio init", (gen) => ({
      init: {
        url,
        concurrency: Math.ceil(SETUP_CONCURRENCY / p.generatorCount),
        members: gen.members,
      },
    }));
    const connectSeconds = Math.max(...inits.map((r) => r.connectMs)) / 1000;

    const s = io(url, { transports: ["websocket"], forceNew: true });
    sender = s;
    await new Promise<void>((resolve, reject) => {
      s.once("connect", () => resolve());
      s.once("connect_error", reject);
    });
    const emit = (frame: Record<string, unknown>) => s.timeout(30_000).emitWithAck("message", frame);
    // One packet per group before the drop: a client resumes from the offset of the last packet it got.
    await pool(Array.from({ length: p.groups }), MUTATION_CONCURRENCY, (_, g) =>
      emit({ conversation_id: `g${g}` }),
    );
    await ask<unknown>(generators, 60_000, "socketio primed", () => ({ primed: {} }));

    log("resume: socketio: every client loses its connection");
    await ask<unknown>(generators, 60_000, "socketio down", () => ({ down: {} }));
    const { int } = seeded(0x5707);
    log(`resume: socketio: ${p.perGroup} messages, ${p.edits} edits, ${p.deletes} deletes per group`);
    const emits = Array.from({ length: p.groups * changes }, (_, n) => ({
      g: n % p.groups,
      key: Math.floor(n / p.groups),
    }));
    await pool(emits, MUTATION_CONCURRENCY, ({ g, key }) =>
      emit({
        conversation_id: `g${g}`,
        key,
        type: key < p.perGroup ? "message" : key < p.perGroup + p.edits ? "edit" : "delete",
        content: sentence(int),
      }),
    );

    log(
      `resume: socketio: ${p.clients} clients reconnect at once (${p.clients * changes} packets to replay)`,
    );
    const pids = generators.map((gen) => gen.child.pid);
    const cpu0 = pids.map(cpuSeconds);
    const serverCpu0 = cpuSeconds(server.pid);
    const drops0 = listenDrops();
    const stormT0 = now();
    const caught = await ask<{ allCaughtUp: boolean }>(
      generators,
      p.timeoutMs + 30_000,
      "socketio storm",
      (gen) => ({
        storm: {
          t0: stormT0,
          timeoutMs: p.timeoutMs,
          expected: Object.fromEntries(gen.groups.map((g) => [g, changes])),
        },
      }),
    );
    const wall = (now() - stormT0) / 1000;
    const generatorPcts = pids.map((pid, w) => ((cpuSeconds(pid) - (cpu0[w] as number)) / wall) * 100);
    const serverCpuPct = ((cpuSeconds(server.pid) - serverCpu0) / wall) * 100;
    const drops = listenDropsSince(drops0);
    const allCaughtUp = caught.every((r) => r.allCaughtUp);
    const finished = await ask<SocketioFinish>(generators, SETTLE_MS + 30_000, "socketio finish", () => ({
      finish: { settleMs: SETTLE_MS },
    }));

    const figures = stormFigures(finished, allCaughtUp, wall);
    const { caughtUp, histogram } = figures;
    const { lost, duplicated } = figures.metrics;
    const recovered = finished.reduce((n, r) => n + r.recovered, 0);
    if (!allCaughtUp)
      notes.push(
        `timed out after ${p.timeoutMs / 1000} s: ${caughtUp} of ${p.clients} clients caught up; partial figures`,
      );
    notes.push(
      `${recovered} of ${p.clients} sessions recovered (Socket.IO's socket.recovered); a client whose session ` +
        "was not recovered gets nothing it missed (it joins its room again as a new socket)",
    );
    if (lost > 0 || duplicated > 0) notes.push(`${lost} lost and ${duplicated} duplicated packets`);
    if (drops !== undefined) notes.push(listenDropsNote(drops));
    notes.push(
      `${p.generatorCount} generator processes, CPU per process ${generatorPcts.map((x) => `${x.toFixed(0)}%`).join(", ")} ` +
        `of a core, the server ${serverCpuPct.toFixed(0)}% (one Node.js process: recovery keeps its packets in memory)`,
    );
    notes.push(
      "Socket.IO replays every packet emitted while a client was away, edits and deletes as packets of their " +
        "own, from one node's memory for a set time (lost when the process restarts); Parley replays each " +
        "changed message once at its latest version, from its store",
    );
    const r1 = (n: number) => Math.round(n * 10) / 10;
    log(
      `resume: socketio: ${caughtUp}/${p.clients} caught up in ${r1(figures.lastMs / 1000)} s; lost ${lost}, duplicated ${duplicated}`,
    );
    return {
      scenario: "resume",
      target: "socketio",
      settings,
      metrics: {
        ...figures.metrics,
        sessions_recovered: recovered,
        ...(drops === undefined ? {} : { listen_drops: drops }),
        setup_connect_s: r1(connectSeconds),
        server_cpu_pct: r1(serverCpuPct),
        server_rss_mib: r1(rssMiB(server.pid)),
      },
      latency: histogram.summary(),
      generator_cpu_pct: r1(Math.max(0, ...generatorPcts)),
      notes,
    };
  } finally {
    sender?.disconnect();
    await Promise.all(generators.map((gen) => quit(gen.child)));
    await stop(server);
  }
}
