// The resume storm: N SDK clients (one user each) in group conversations disconnect, messages, edits and
// deletes are sent, then all reconnect at once and resume; time until every client has caught up, and the
// changes each lost or saw twice (both must be 0).
//
// The clients live in generator processes (loadgen/resume-worker.ts, whole groups each), so that the time to
// caught-up is the server's rather than one saturated bench process's. This process is the coordinator: it
// starts the server, seeds the accounts, creates the groups and makes the changes over REST, computes from
// the server's events feed what each client must see, then starts the storm and merges the workers' counts.
// Socket.IO's storm, beside it in the same run, is resume-socketio.ts; what the two share is in storm.ts.

import { join } from "node:path";
import type { TokenResponse } from "../../src/client/index.ts";
import { RestClient } from "../../src/client/index.ts";
import { listenDrops, listenDropsNote, listenDropsSince } from "../lib/netstat.ts";
import { startParleyServer } from "../lib/parley-server.ts";
import { type Child, cpuSeconds, lines, pool, quit, spawn } from "../lib/proc.ts";
import { seeded, sentence } from "../lib/random.ts";
import { seedAccounts } from "../lib/seed.ts";
import { TARGETS } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import type {
  CaughtReply,
  DownReply,
  ExpectReply,
  FinishReply,
  InitReply,
  ResumeCommand,
  ResumeMember,
} from "../loadgen/resume-protocol.ts";
import { failedResult } from "../loadgen/run.ts";
import { socketioStorm } from "./resume-socketio.ts";
import {
  askAll,
  GROUP_SIZE,
  MUTATION_CONCURRENCY,
  now,
  plan,
  SETTLE_MS,
  SETUP_CONCURRENCY,
  stormFigures,
} from "./storm.ts";

const SENDERS_PER_GROUP = 5;
const WORKER = join(import.meta.dir, "..", "loadgen", "resume-worker.ts");

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

async function parleyStorm(quick: boolean, log: (line: string) => void): Promise<ScenarioResult> {
  const { clients, perGroup, edits, deletes, timeoutMs, groups, generatorCount } = plan(quick);
  const settings = {
    clients,
    groups,
    group_size: GROUP_SIZE,
    users: clients,
    messages_per_group: perGroup,
    edits_per_group: edits,
    deletes_per_group: deletes,
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

    const inits = await ask<InitReply>(generators, 120_000, "resume init", (gen) => ({
      init: {
        baseUrl: server.url,
        concurrency: Math.ceil(SETUP_CONCURRENCY / generatorCount),
        members: gen.members,
      },
    }));
    const connectSeconds = Math.max(...inits.map((r) => r.connectMs)) / 1000;

    log("resume: every client disconnects");
    const downs = await ask<DownReply>(generators, 60_000, "resume down", () => ({ down: true }));
    const position = new Map<number, number>();
    for (const d of downs) for (const [index, seq] of d.positions) position.set(index, seq);

    const { int } = seeded(0x5707);
    log(`resume: ${perGroup} messages, ${edits} edits, ${deletes} deletes per group`);
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
    const expecting = await ask<ExpectReply>(generators, 30_000, "resume expect", (gen) => ({
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
    const drops0 = listenDrops();
    const stormT0 = now();
    const caught = await ask<CaughtReply>(generators, timeoutMs + 30_000, "resume storm", () => ({
      storm: { t0: stormT0, timeoutMs },
    }));
    const wall = (now() - stormT0) / 1000;
    const generatorPcts = pids.map((pid, w) => ((cpuSeconds(pid) - (cpu0[w] as number)) / wall) * 100);
    const serverCpuPct = ((server.cpuSeconds() - serverCpu0) / wall) * 100;
    const drops = listenDropsSince(drops0);
    const allCaughtUp = caught.every((r) => r.allCaughtUp);
    const finished = await ask<FinishReply>(
      generators,
      Math.max(0, stormT0 + timeoutMs - now()) + SETTLE_MS + 30_000,
      "resume finish",
      () => ({ finish: { settleMs: SETTLE_MS } }),
    );

    const sum = (f: (r: FinishReply) => number) => finished.reduce((n, r) => n + f(r), 0);
    const figures = stormFigures(finished, allCaughtUp, wall);
    const { caughtUp, histogram } = figures;
    const { lost, duplicated } = figures.metrics;
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
    if (drops !== undefined) notes.push(listenDropsNote(drops));
    if (stray > 0) notes.push(`${stray} events reached clients after they had closed their sockets`);
    if (lost > 0 || duplicated > 0) notes.push(`FAIL: ${lost} lost and ${duplicated} duplicated changes`);
    notes.push(
      "duplicates are counted as the app sees them, after the SDK's own seq check; one user per client, " +
        "so every reconnect also sends presence to the user's group",
    );
    for (const p of server.problems().slice(-3)) notes.push(`server log: ${p}`);

    const r1 = (n: number) => Math.round(n * 10) / 10;
    const result: ScenarioResult = {
      scenario: "resume",
      target: "parley",
      settings,
      metrics: {
        ...figures.metrics,
        unexpected: sum((r) => r.unexpected),
        presence_frames: sum((r) => r.presence),
        connect_retries: sum((r) => r.connectRetries),
        connect_failed: sum((r) => r.connectFailed),
        ...(drops === undefined ? {} : { listen_drops: drops }),
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

/** askAll for the SDK clients' generators, with their commands (loadgen/resume-protocol.ts). */
const ask = <R>(gens: Generator[], ms: number, what: string, cmd: (gen: Generator) => ResumeCommand) =>
  askAll<R, Generator>(gens, ms, what, cmd);
