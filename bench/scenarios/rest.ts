// The rest scenario: sends over REST, history pages and sign-ins per second, from closed fetch loops in
// GENERATORS processes of their own (loadgen/rest-worker.ts), with latency per operation, against Parley
// (one process, its full path: auth, validation, idempotency, a durable write before the answer), the REST
// ceiling (bare Bun.serve, no auth, validation or storage: bench/peers/rest-bun.ts) and Node.js with
// Express 5 (bench/peers/rest-express.mjs: JWT auth, messages in memory). The same raw fetch client and the same requests go to every target; every
// sign-in checks an argon2id hash of Parley's cost.

import { ParleyClient } from "../../src/client/index.ts";
import { loadConfig } from "../../src/config.ts";
import { Histogram, type SerializedHistogram } from "../lib/histogram.ts";
import { startParleyServer } from "../lib/parley-server.ts";
import { type Child, cpuSeconds, lines, PEER_ENV, pool, rssMiB, sendLine, spawn, stop } from "../lib/proc.ts";
import { BENCH_PASSWORD, seedAccounts } from "../lib/seed.ts";
import { type RestTargetName, restTargets } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import { type RestOp, type RestPlan, restOp, signin } from "../loadgen/rest-ops.ts";
import { failedResult } from "../loadgen/run.ts";

const CONCURRENCY = 32;
/** Generator processes, the loops split between them, so that no row's figure is one saturated client's. */
const GENERATORS = 2;
const WORKER = new URL("../loadgen/rest-worker.ts", import.meta.url).pathname;
const USERS = 8;
const HISTORY_MESSAGES = 10_000;
const PAGE = 50;
const ROOT = new URL("../..", import.meta.url).pathname;

/** One running target, with its users signed up and a conversation they are all in. */
export interface RestTarget {
  url: string;
  pid: number;
  usernames: string[];
  /** Each user's access token, index for index with usernames. */
  tokens: string[];
  conversationId: string;
  notes: string[];
  stop(): Promise<void>;
}

/** The argon2id cost Parley hashes with (its defaults, or PASSWORD_HASH_* from the bench's environment). */
function hashCost() {
  const { config } = loadConfig({
    PASSWORD_HASH_MEMORY_KIB: process.env.PASSWORD_HASH_MEMORY_KIB,
    PASSWORD_HASH_TIME: process.env.PASSWORD_HASH_TIME,
  });
  return { memoryKiB: config.PASSWORD_HASH_MEMORY_KIB, time: config.PASSWORD_HASH_TIME };
}

export const rest: Scenario = async ({ quick, log }) => {
  // A quick run's windows are short: three targets × three operations in about half a minute.
  const seconds = quick ? 1.5 : 10;
  const cost = hashCost();
  const results: ScenarioResult[] = [];
  for (const name of restTargets(process.env.BENCH_TARGETS)) {
    const run = Math.random().toString(36).slice(2, 8);
    let target: RestTarget | undefined;
    try {
      log(`rest: ${name}: starting`);
      target = await startRestTarget(name, run, cost);
      results.push(...(await measureTarget(name, target, seconds, cost, log)));
    } catch (err) {
      log(`rest: ${name}: FAILED ${err}`);
      results.push(failedResult("rest", name, { operation: "all" }, err));
    } finally {
      await target?.stop();
    }
  }
  return results;
};

/** Starts `name` with USERS users named after `run` whose passwords are hashed at `cost`. */
export async function startRestTarget(
  name: RestTargetName,
  run: string,
  cost: { memoryKiB: number; time: number },
): Promise<RestTarget> {
  const usernames = Array.from({ length: USERS }, (_, i) => `bench_${run}_${i}`);
  if (name === "parley") {
    const server = await startParleyServer();
    try {
      const accounts = await seedAccounts(server.env, USERS, run);
      // REST alone (no socket, so nothing to ack); autoAck: false says so, as in every bench run before it.
      const owner = new ParleyClient({ baseUrl: server.url, autoAck: false });
      owner.adopt(accounts[0] as (typeof accounts)[number]);
      const conversation = await owner.rest.conversations.create({
        conversation_type: "group",
        name: "rest bench",
        participant_ids: accounts.slice(1).map((a) => a.user.id),
      });
      owner.close();
      return {
        url: server.url,
        pid: server.pid,
        usernames: accounts.map((a) => a.user.username),
        tokens: accounts.map((a) => a.access_token),
        conversationId: conversation.id,
        notes: ["one Parley process at LOG_LEVEL=info (a JSON log line per request, drained by the bench)"],
        stop: () => server.stop(),
      };
    } catch (err) {
      await server.stop();
      throw err;
    }
  }
  const cmd =
    name === "bare-bun"
      ? [process.execPath, "run", `${ROOT}bench/peers/rest-bun.ts`]
      : ["node", `${ROOT}bench/peers/rest-express.mjs`];
  const child: Child = spawn(cmd, {
    ...PEER_ENV,
    NODE_ENV: "production",
    USERNAMES: usernames.join(","),
    PASSWORD: BENCH_PASSWORD,
    HASH_MEMORY_KIB: String(cost.memoryKiB),
    HASH_TIME: String(cost.time),
    SECRET: crypto.randomUUID() + crypto.randomUUID(),
  });
  try {
    const { port } = JSON.parse(await lines(child).next(15_000, `${name} start`)) as { port: number };
    const url = `http://127.0.0.1:${port}`;
    const tokens = await Promise.all(usernames.map((username) => signin(url, username)));
    return {
      url,
      pid: child.pid,
      usernames,
      tokens,
      conversationId: "c0",
      notes: [],
      stop: () => stop(child),
    };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

async function measureTarget(
  name: RestTargetName,
  t: RestTarget,
  seconds: number,
  cost: { memoryKiB: number; time: number },
  log: (line: string) => void,
): Promise<ScenarioResult[]> {
  const settings = { seconds, concurrency: CONCURRENCY, users: USERS, generators: GENERATORS };
  const { url, usernames, tokens, conversationId } = t;
  const plan: RestPlan = { url, usernames, tokens, conversationId, messages: 0, page: PAGE };
  const results: ScenarioResult[] = [];
  const row = (operation: string, extra: Record<string, unknown>, m: Measured) =>
    results.push(result(name, operation, { ...settings, ...extra }, m, t.notes));

  log(`rest: ${name}: send over REST for ${seconds} s`);
  const sent = await measure(t.pid, plan, "send", seconds);
  row("send", { conversation_members: USERS }, sent);

  const missing = Math.max(0, HISTORY_MESSAGES - sent.ok);
  log(`rest: ${name}: filling the conversation to ${HISTORY_MESSAGES} messages (${missing} more)`);
  const send = restOp(plan, "send", 0xf111);
  await pool(Array.from({ length: missing }), CONCURRENCY, (_, i) => send(i));
  plan.messages = sent.ok + missing;

  log(`rest: ${name}: history pages (limit ${PAGE}) for ${seconds} s`);
  const pages = await measure(t.pid, plan, "history page", seconds);
  row("history page", { messages: plan.messages, limit: PAGE, before: "uniform" }, pages);

  // A sign-in takes ~0.1 s of a core on purpose: a quick run's second still counts ~20 of them.
  const signinSeconds = seconds < 5 ? 1 : seconds;
  log(`rest: ${name}: sign-ins for ${signinSeconds} s (argon2id: CPU-bound by design)`);
  const signins = await measure(t.pid, plan, "signin", signinSeconds);
  row(
    "signin",
    { seconds: signinSeconds, hash: `argon2id ${cost.memoryKiB} KiB × ${cost.time} passes` },
    signins,
  );
  return results;
}

export interface Measured {
  ok: number;
  errors: number;
  firstError?: string;
  seconds: number;
  histogram: Histogram;
  /** Each generator process's CPU over the window (100 = one core). */
  generatorCpuPcts: number[];
  serverCpuPct: number;
  serverRssMiB: number;
}

/**
 * CONCURRENCY closed loops of `op`, split over GENERATORS processes that start together, for `seconds`;
 * latency of successful calls only, the server's CPU over the same window.
 */
export async function measure(pid: number, plan: RestPlan, op: RestOp, seconds: number): Promise<Measured> {
  const perProcess = Math.ceil(CONCURRENCY / GENERATORS);
  const workers = Array.from({ length: GENERATORS }, (_, g) =>
    spawn([
      process.execPath,
      "run",
      WORKER,
      JSON.stringify({ plan, op, seconds, concurrency: perProcess, seed: 0x7e57 + g, first: g * perProcess }),
    ]),
  );
  try {
    const readers = workers.map((w) => lines(w));
    await Promise.all(readers.map((r, g) => r.next(15_000, `rest generator ${g + 1} start`)));
    const serverCpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    for (const w of workers) sendLine(w, { go: true });
    const done = await Promise.all(
      readers.map(
        async (r, g) =>
          JSON.parse(await r.next(seconds * 1000 + 60_000, `rest generator ${g + 1}`)) as WorkerResult,
      ),
    );
    const wall = (performance.now() - t0) / 1000;
    const histogram = new Histogram();
    for (const d of done) histogram.merge(d.histogram);
    const firstError = done.find((d) => d.firstError)?.firstError;
    return {
      ok: done.reduce((n, d) => n + d.ok, 0),
      errors: done.reduce((n, d) => n + d.errors, 0),
      firstError: firstError && `${op}: ${firstError}`,
      seconds: Math.max(...done.map((d) => d.wall_s)),
      histogram,
      // The busiest generator's, as in every scenario; each one's in a note when it is saturated.
      generatorCpuPcts: done.map((d) => (d.cpu_s / d.wall_s) * 100),
      serverCpuPct: ((cpuSeconds(pid) - serverCpu0) / wall) * 100,
      serverRssMiB: rssMiB(pid),
    };
  } finally {
    await Promise.all(workers.map((w) => stop(w)));
  }
}

interface WorkerResult {
  ok: number;
  errors: number;
  firstError?: string;
  histogram: SerializedHistogram;
  cpu_s: number;
  wall_s: number;
}

function result(
  target: RestTargetName,
  operation: string,
  settings: Record<string, unknown>,
  m: Measured,
  notes: string[],
): ScenarioResult {
  const r1 = (n: number) => Math.round(n * 10) / 10;
  const all = [...notes];
  if (m.firstError) all.push(`${m.errors} errors; first: ${m.firstError}`);
  const busiest = Math.max(0, ...m.generatorCpuPcts);
  if (busiest > 90)
    all.push(
      `${operation}: the generators used ${m.generatorCpuPcts.map((p) => `${r1(p)}%`).join(", ")} of a core: ` +
        "the figure may be theirs",
    );
  return {
    scenario: "rest",
    target,
    settings: { operation, ...settings },
    metrics: {
      ops_per_s: r1(m.ok / m.seconds),
      ok: m.ok,
      errors: m.errors,
      seconds: Math.round(m.seconds * 1000) / 1000,
      server_cpu_pct: r1(m.serverCpuPct),
      server_rss_mib: r1(m.serverRssMiB),
    },
    latency: m.histogram.summary(),
    generator_cpu_pct: r1(busiest),
    notes: all,
  };
}
