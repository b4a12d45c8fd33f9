// The resume storm: N SDK clients (one user each) in group conversations disconnect, messages, edits and
// deletes are sent, then all reconnect at once and resume; time until every client has caught up, and the
// changes each lost or saw twice (both must be 0).
//
// The clients live in generator processes (loadgen/resume-worker.ts, whole groups each), so that the time to
// caught-up is the server's rather than one saturated bench process's. This process is the coordinator: it
// starts the server, seeds the accounts, creates the groups and makes the changes over REST, computes from
// the server's events feed what each client must see, then starts the storm and merges the workers' counts.

import { join } from "node:path";
import type { TokenResponse } from "../../src/client/index.ts";
import { RestClient } from "../../src/client/index.ts";
import { envInt } from "../lib/env.ts";
import { Histogram } from "../lib/histogram.ts";
import { startParleyServer } from "../lib/parley-server.ts";
import { type Child, cpuSeconds, lines, pool, quit, rssMiB, sendLine, spawn, stop } from "../lib/proc.ts";
import { seeded, sentence } from "../lib/random.ts";
import { seedAccounts } from "../lib/seed.ts";
import { TARGETS } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import type {
  CaughtReply,
  DownReply,
  ErrorReply,
  ExpectReply,
  FinishReply,
  InitReply,
  ResumeCommand,
  ResumeMember,
} from "../loadgen/resume-protocol.ts";
import type { SocketioCommand, SocketioFinish } from "../loadgen/resume-socketio.ts";
import { failedResult } from "../loadgen/run.ts";

const GROUP_SIZE = 100;
const SENDERS_PER_GROUP = 5;
/** Connects in flight at setup, over all generator processes together. */
const SETUP_CONCURRENCY = 200;
const MUTATION_CONCURRENCY = 16;
const SETTLE_MS = 500;
const DEFAULT_GENERATORS = 2;
const WORKER = join(import.meta.dir, "..", "loadgen", "resume-worker.ts");
const SOCKETIO_WORKER = join(import.meta.dir, "..", "loadgen", "resume-socketio.ts");
const SOCKETIO_PEER = join(import.meta.dir, "..", "peers", "socketio.mjs");
const now = () => performance.timeOrigin + performance.now();

interface Generator {
  child: Child;
  reader: ReturnType<typeof lines>;
  /** Its members, in the order it was given them (the order of its per-member replies). */
  members: ResumeMember[];
  groups: number[];
}

export const resume: Scenario = async ({ quick, log }) => {
  const results: ScenarioResult[] = [];
  for (const name of TARGETS.filter((t) => t === "parley" || t === "socketio")) {
    try {
      results.push(await (name === "parley" ? parleyStorm : socketioStorm)(quick, log));
    } catch (err) {
      log(`resume: ${name}: FAILED ${err}`);
      results.push(failedResult("resume", name, {}, err));
    }
  }
  return results;
};

/** The storm's size: clients, groups and the changes each group gets while its clients are away. */
function plan(quick: boolean) {
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

async function parleyStorm(quick: boolean, log: (line: string) => void): Promise<ScenarioResult> {
  const clients = quick ? 500 : 5_000;
  const perGroup = quick ? 100 : 200;
  const timeoutMs = quick ? 60_000 : 180_000;
  const groups = Math.ceil(clients / GROUP_SIZE);
  const generatorCount = Math.min(groups, envInt("BENCH_RESUME_GENERATORS", DEFAULT_GENERATORS, 1));
  const settings = {
    clients,
    groups,
    group_size: GROUP_SIZE,
    users: clients,
    messages_per_group: perGroup,
    edits_per_group: Math.floor(perGroup / 10),
    deletes_per_group: Math.floor(perGroup / 20),
    timeout_s: timeoutMs / 1000,
    encoding: "msgpackr",
    generators: generatorCount,
  };
  const notes: string[] = [];
  const server = await startParleyServer();
  const generators: Generator[] = [];
  try {
    const run = Math.random().toString(36).slice(2, 8);
    log(`resume: parley on ${server.url}; writing ${clients} accounts (bench/lib/seed.ts)`);
    const t0 = performance.now();
    const accounts = await seedAccounts(server.env, clients, run);
    const groupOf = (i: number) => Math.floor(i / GROUP_SIZE);
    const groupMembers = Array.from({ length: groups }, (_, g) =>
      accounts.map((_, i) => i).filter((i) => groupOf(i) === g),
    );
    const inGroup = (g: number) => groupMembers[g] as number[];
    // REST only, with the seeded access tokens: no refresh timers here (the generators hold the sessions).
    const rest = accounts.map(
      (a: TokenResponse) => new RestClient({ baseUrl: server.url, token: () => a.access_token }),
    );
    const restOf = (i: number) => rest[i] as RestClient;
    const groupIds = await pool(Array.from({ length: groups }), 4, async (_, g) => {
      const [owner, ...others] = inGroup(g);
      const c = await restOf(owner as number).conversations.create({
        conversation_type: "group",
        name: `storm ${g}`,
        participant_ids: others.map((i) => (accounts[i] as TokenResponse).user.id),
      });
      return c.id;
    });
    const setupSeq = await pool(
      groupIds,
      4,
      async (id, g) => (await restOf(inGroup(g)[0] as number).conversations.get(id)).last_seq,
    );
    const setupSeconds = (performance.now() - t0) / 1000;

    // Whole groups per generator process, dealt round-robin.
    for (let w = 0; w < generatorCount; w++) {
      const child = spawn([process.execPath, "run", WORKER]);
      const mine = groupIds.map((_, g) => g).filter((g) => g % generatorCount === w);
      generators.push({
        child,
        reader: lines(child),
        groups: mine,
        members: accounts
          .map((tokens, index) => ({ index, tokens, group: groupOf(index) }))
          .filter(({ group }) => group % generatorCount === w)
          .map(({ index, tokens, group }) => ({
            index,
            group,
            tokens,
            conversationId: groupIds[group] as string,
            setupSeq: setupSeq[group] as number,
          })),
      });
    }
    log(
      `resume: set up in ${setupSeconds.toFixed(1)} s; connecting ${clients} clients from ${generatorCount} ` +
        "generator processes (loadgen/resume-worker.ts)",
    );

    const inits = await askAll<InitReply>(generators, 120_000, "resume init", (gen) => ({
      init: {
        baseUrl: server.url,
        concurrency: Math.ceil(SETUP_CONCURRENCY / generatorCount),
        members: gen.members,
      },
    }));
    const connectSeconds = Math.max(...inits.map((r) => r.connectMs)) / 1000;

    log("resume: every client disconnects");
    const downs = await askAll<DownReply>(generators, 60_000, "resume down", () => ({ down: true }));
    const position = new Map<number, number>();
    for (const d of downs) for (const [index, seq] of d.positions) position.set(index, seq);

    const { int } = seeded(0x5707);
    log(
      `resume: ${perGroup} messages, ${settings.edits_per_group} edits, ${settings.deletes_per_group} deletes per group`,
    );
    const sends = groupIds.flatMap((id, g) =>
      Array.from({ length: perGroup }, (_, i) => ({
        id,
        i,
        sender: inGroup(g)[i % SENDERS_PER_GROUP] as number,
      })),
    );
    const sent = await pool(sends, MUTATION_CONCURRENCY, async ({ id, i, sender }) => {
      const message = await restOf(sender).messages.send(id, {
        content: sentence(int),
        client_msg_id: crypto.randomUUID(),
      });
      return { i, sender, messageId: message.id };
    });
    await pool(
      sent.filter((s) => s.i % 10 === 3 || s.i % 20 === 7),
      MUTATION_CONCURRENCY,
      async ({ i, sender, messageId }) => {
        if (i % 10 === 3) await restOf(sender).messages.edit(messageId, `${sentence(int)} (edited)`);
        else await restOf(sender).messages.delete(messageId);
      },
    );

    // The server's truth: every message changed after a position, once each, at its latest version_seq.
    const targets: number[] = [];
    const expected = new Map<string, number[]>();
    for (const [g, id] of groupIds.entries()) {
      const owner = restOf(inGroup(g)[0] as number);
      for (const from of new Set(inGroup(g).map((i) => position.get(i) ?? 0))) {
        const seqs = new Set<number>();
        let after = from;
        for (let page = 0; page < 1_000; page++) {
          const p = await owner.messages.events(id, { after, limit: 1000 });
          for (const item of p.items) seqs.add(item.version_seq);
          targets[g] = p.last_seq;
          const last = p.items.at(-1);
          if (!p.has_more || !last) break;
          after = last.version_seq;
        }
        expected.set(`${g}:${from}`, [...seqs]);
      }
    }
    const expecting = await askAll<ExpectReply>(generators, 30_000, "resume expect", (gen) => ({
      expect: {
        targets: gen.groups.map((g) => ({ group: g, lastSeq: targets[g] as number })),
        expected: [...expected]
          .map(([key, seqs]) => {
            const [group, from] = key.split(":").map(Number) as [number, number];
            return { group, position: from, seqs };
          })
          .filter(({ group }) => gen.groups.includes(group)),
      },
    }));
    const replayable = expecting.reduce((n, r) => n + r.expecting, 0);

    log(`resume: ${clients} clients reconnect at once (${replayable} changes to replay)`);
    const pids = generators.map((gen) => gen.child.pid);
    const cpu0 = pids.map(cpuSeconds);
    const serverCpu0 = server.cpuSeconds();
    const stormT0 = now();
    const caught = await askAll<CaughtReply>(generators, timeoutMs + 30_000, "resume storm", () => ({
      storm: { t0: stormT0, timeoutMs },
    }));
    const wall = (now() - stormT0) / 1000;
    const generatorPcts = pids.map((pid, w) => ((cpuSeconds(pid) - (cpu0[w] as number)) / wall) * 100);
    const serverCpuPct = ((server.cpuSeconds() - serverCpu0) / wall) * 100;
    const allCaughtUp = caught.every((r) => r.allCaughtUp);
    const finished = await askAll<FinishReply>(
      generators,
      Math.max(0, stormT0 + timeoutMs - now()) + SETTLE_MS + 30_000,
      "resume finish",
      () => ({ finish: { settleMs: SETTLE_MS } }),
    );

    const sum = (f: (r: FinishReply) => number) => finished.reduce((n, r) => n + f(r), 0);
    const lost = sum((r) => r.lost);
    const duplicated = sum((r) => r.duplicated);
    const histogram = new Histogram();
    let lastCaughtUpMs = 0;
    let caughtUp = 0;
    for (const r of finished)
      for (const ms of r.caughtUpMs) {
        if (ms === null) continue;
        histogram.record(ms);
        lastCaughtUpMs = Math.max(lastCaughtUpMs, ms);
        caughtUp++;
      }
    // The busiest process's, as in every other scenario (types.ts); the sum is in a note.
    const generatorCpuPct = Math.max(0, ...generatorPcts);
    const totalPct = generatorPcts.reduce((n, pct) => n + pct, 0);
    const stray = sum((r) => r.stray);
    const perProcess = generatorPcts.map((pct) => `${pct.toFixed(0)}%`).join(", ");
    if (!allCaughtUp)
      notes.push(
        `timed out after ${timeoutMs / 1000} s: ${caughtUp} of ${clients} clients caught up; partial figures`,
      );
    notes.push(
      `${generatorCount} generator process${generatorCount === 1 ? "" : "es"} (whole groups each), CPU per ` +
        `process ${perProcess} of a core (${totalPct.toFixed(0)}% together, the server ${serverCpuPct.toFixed(0)}%: ` +
        "on 2 cores, the machine is the limit when these add up to ~200%)",
    );
    for (const [w, pct] of generatorPcts.entries())
      if (pct > 90)
        notes.push(
          `generator process ${w + 1} (${generators[w]?.members.length} clients) used ${pct.toFixed(0)}% of a ` +
            "core: it is saturated, so the time to caught-up is partly the generator's",
        );
    if (stray > 0) notes.push(`${stray} events reached clients after they had closed their sockets`);
    if (lost > 0 || duplicated > 0) notes.push(`FAIL: ${lost} lost and ${duplicated} duplicated changes`);
    notes.push(
      "duplicates are counted as the app sees them, after the SDK's own seq check; one user per client, " +
        "so every reconnect also sends presence to the user's group",
    );
    for (const p of server.problems().slice(-3)) notes.push(`server log: ${p}`);

    const r1 = (n: number) => Math.round(n * 10) / 10;
    const delivered = sum((r) => r.delivered);
    const result: ScenarioResult = {
      scenario: "resume",
      target: "parley",
      settings,
      metrics: {
        caught_up_s: r1(allCaughtUp ? lastCaughtUpMs / 1000 : wall),
        all_connected_s: r1(Math.max(...finished.map((r) => r.lastConnectedMs)) / 1000),
        clients_caught_up: caughtUp,
        lost,
        duplicated,
        unexpected: sum((r) => r.unexpected),
        clients_with_loss: sum((r) => r.clientsWithLoss),
        changes_replayed: delivered,
        changes_replayed_per_s: Math.round(delivered / wall),
        presence_frames: sum((r) => r.presence),
        connect_retries: sum((r) => r.connectRetries),
        connect_failed: sum((r) => r.connectFailed),
        setup_accounts_s: r1(setupSeconds),
        setup_connect_s: r1(connectSeconds),
        server_cpu_pct: r1(serverCpuPct),
        server_rss_mib: r1(server.rssBytes() / 2 ** 20),
      },
      latency: histogram.summary(),
      generator_cpu_pct: r1(generatorCpuPct),
      notes,
    };
    log(
      `resume: ${caughtUp}/${clients} caught up in ${result.metrics.caught_up_s} s; lost ${lost}, duplicated ${duplicated}; ` +
        `server ${r1(serverCpuPct)}%, generators ${perProcess} of a core`,
    );
    return result;
  } finally {
    await Promise.all(generators.map((gen) => quit(gen.child)));
    await server.stop();
  }
}

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
    NODE_ENV: "production",
    REDIS_URL: "",
    RECOVERY_MS: String(p.timeoutMs + 120_000),
  });
  const generators: Array<Worker & { groups: number[]; members: Array<{ index: number; group: number }> }> =
    [];
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
    type SioGenerator = (typeof generators)[number];
    const inits = await askAll<{ connectMs: number }, SioGenerator>(
      generators,
      120_000,
      "socketio init",
      (gen) => ({
        init: {
          url,
          concurrency: Math.ceil(SETUP_CONCURRENCY / p.generatorCount),
          members: gen.members,
        },
      }),
    );
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
    await askAll<unknown, SioGenerator>(generators, 60_000, "socketio primed", () => ({ primed: {} }));

    log("resume: socketio: every client loses its connection");
    await askAll<unknown, SioGenerator>(generators, 60_000, "socketio down", () => ({ down: {} }));
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
    const stormT0 = now();
    const caught = await askAll<{ allCaughtUp: boolean }, SioGenerator>(
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
    const allCaughtUp = caught.every((r) => r.allCaughtUp);
    const finished = await askAll<SocketioFinish, SioGenerator>(
      generators,
      SETTLE_MS + 30_000,
      "socketio finish",
      () => ({
        finish: { settleMs: SETTLE_MS },
      }),
    );

    const sum = (f: (r: SocketioFinish) => number) => finished.reduce((n, r) => n + f(r), 0);
    const histogram = new Histogram();
    let last = 0;
    let caughtUp = 0;
    for (const r of finished)
      for (const ms of r.caughtUpMs) {
        if (ms === null) continue;
        histogram.record(ms);
        last = Math.max(last, ms);
        caughtUp++;
      }
    const lost = sum((r) => r.lost);
    const duplicated = sum((r) => r.duplicated);
    const recovered = sum((r) => r.recovered);
    if (!allCaughtUp)
      notes.push(
        `timed out after ${p.timeoutMs / 1000} s: ${caughtUp} of ${p.clients} clients caught up; partial figures`,
      );
    notes.push(
      `${recovered} of ${p.clients} sessions recovered (Socket.IO's socket.recovered); a client whose session ` +
        "was not recovered gets nothing it missed (it joins its room again as a new socket)",
    );
    if (lost > 0 || duplicated > 0) notes.push(`${lost} lost and ${duplicated} duplicated packets`);
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
    const delivered = sum((r) => r.delivered);
    log(
      `resume: socketio: ${caughtUp}/${p.clients} caught up in ${r1(last / 1000)} s; lost ${lost}, duplicated ${duplicated}`,
    );
    return {
      scenario: "resume",
      target: "socketio",
      settings,
      metrics: {
        caught_up_s: r1(allCaughtUp ? last / 1000 : wall),
        all_connected_s: r1(Math.max(...finished.map((r) => r.lastConnectedMs)) / 1000),
        clients_caught_up: caughtUp,
        lost,
        duplicated,
        clients_with_loss: sum((r) => r.clientsWithLoss),
        sessions_recovered: recovered,
        changes_replayed: delivered,
        changes_replayed_per_s: Math.round(delivered / wall),
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

/** A generator process and its line reader. */
interface Worker {
  child: Child;
  reader: ReturnType<typeof lines>;
}

/** Sends each generator its command and waits for every reply; a worker's error reply throws here. */
async function askAll<R, W extends Worker = Generator>(
  generators: W[],
  ms: number,
  what: string,
  cmd: (gen: W) => ResumeCommand | SocketioCommand,
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
