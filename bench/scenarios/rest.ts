// The rest scenario: sends over REST, history pages and sign-ins per second, from bounded concurrent fetch
// loops in the bench process, with latency per operation, against Parley (one process, its full path:
// auth, validation, idempotency, a durable write before the answer), the REST ceiling (bare Bun.serve, no
// auth, validation or storage: bench/peers/rest-bun.ts) and Node.js with Express 5 (bench/peers/rest-express.mjs:
// JWT auth, messages in memory). The same raw fetch client and the same requests go to every target; every
// sign-in checks an argon2id hash of Parley's cost.

import { ParleyClient } from "../../src/client/index.ts";
import { loadConfig } from "../../src/config.ts";
import { Histogram } from "../lib/histogram.ts";
import { startParleyServer } from "../lib/parley-server.ts";
import { type Child, cpuSeconds, lines, pool, rssMiB, spawn, stop } from "../lib/proc.ts";
import { seeded, sentence } from "../lib/random.ts";
import { BENCH_PASSWORD, seedAccounts } from "../lib/seed.ts";
import { type RestTargetName, restTargets } from "../lib/targets.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";
import { failedResult } from "../loadgen/run.ts";

const CONCURRENCY = 32;
const USERS = 8;
const HISTORY_MESSAGES = 10_000;
const PAGE = 50;
/** A safety bound on every loop besides its deadline. */
const MAX_OPS_PER_LOOP = 1_000_000;
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
  // A quick run's windows are short: three targets × three operations fit its two minutes.
  const seconds = quick ? 2 : 10;
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
      const owner = new ParleyClient({ baseUrl: server.url });
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

/** A raw request as every target gets it; throws on an unexpected status. */
export async function call(url: string, method: string, path: string, body?: unknown, token?: string) {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(answer).slice(0, 200)}`);
  return answer;
}

async function signin(url: string, username: string): Promise<string> {
  const answer = await call(url, "POST", "/api/auth/signin", { username, password: BENCH_PASSWORD });
  if (typeof answer.access_token !== "string") throw new Error(`signin: no access_token for ${username}`);
  return answer.access_token;
}

async function measureTarget(
  name: RestTargetName,
  t: RestTarget,
  seconds: number,
  cost: { memoryKiB: number; time: number },
  log: (line: string) => void,
): Promise<ScenarioResult[]> {
  const { int } = seeded(0x7e57);
  const settings = { seconds, concurrency: CONCURRENCY, users: USERS };
  const path = `/api/conversations/${encodeURIComponent(t.conversationId)}/messages`;
  const send = (w: number) =>
    call(
      t.url,
      "POST",
      path,
      { content: sentence(int), client_msg_id: crypto.randomUUID() },
      t.tokens[w % USERS],
    );
  const results: ScenarioResult[] = [];
  const row = (operation: string, extra: Record<string, unknown>, m: Measured) =>
    results.push(result(name, operation, { ...settings, ...extra }, m, t.notes));

  log(`rest: ${name}: send over REST for ${seconds} s`);
  const sent = await measure(t.pid, name, "send", seconds, async (w) => {
    await send(w);
  });
  row("send", { conversation_members: USERS }, sent);

  const missing = Math.max(0, HISTORY_MESSAGES - sent.ok);
  log(`rest: ${name}: filling the conversation to ${HISTORY_MESSAGES} messages (${missing} more)`);
  await pool(Array.from({ length: missing }), CONCURRENCY, (_, i) => send(i));
  const messages = sent.ok + missing;

  log(`rest: ${name}: history pages (limit ${PAGE}) for ${seconds} s`);
  const pages = await measure(t.pid, name, "history page", seconds, async (w) => {
    const before = int(PAGE + 1, messages + 1);
    const page = await call(
      t.url,
      "GET",
      `${path}?before=${before}&limit=${PAGE}`,
      undefined,
      t.tokens[w % USERS],
    );
    const items = page.items as Array<{ seq: number }>;
    if (items.length !== PAGE || items.at(-1)?.seq !== before - 1)
      throw new Error(`page before ${before}: ${items.length} items`);
  });
  row("history page", { messages, limit: PAGE, before: "uniform" }, pages);

  // A sign-in takes ~0.1 s of a core on purpose: a quick run's second still counts ~20 of them.
  const signinSeconds = seconds > 2 ? seconds : 1;
  log(`rest: ${name}: sign-ins for ${signinSeconds} s (argon2id: CPU-bound by design)`);
  const signins = await measure(t.pid, name, "signin", signinSeconds, async (w) => {
    await signin(t.url, t.usernames[w % USERS] as string);
  });
  row(
    "signin",
    { seconds: signinSeconds, hash: `argon2id ${cost.memoryKiB} KiB × ${cost.time} passes` },
    signins,
  );
  return results;
}

interface Measured {
  ok: number;
  errors: number;
  firstError?: string;
  seconds: number;
  histogram: Histogram;
  generatorCpuPct: number;
  serverCpuPct: number;
  serverRssMiB: number;
}

/** Runs CONCURRENCY closed loops of `op` until `seconds` have passed; latency of successful calls only. */
async function measure(
  pid: number,
  target: string,
  name: string,
  seconds: number,
  op: (worker: number) => Promise<void>,
): Promise<Measured> {
  const histogram = new Histogram();
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = process.cpuUsage();
  const serverCpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const loop = async (w: number) => {
    for (let n = 0; n < MAX_OPS_PER_LOOP && performance.now() < deadline; n++) {
      const start = performance.now();
      try {
        await op(w);
        histogram.record(performance.now() - start);
        ok++;
      } catch (err) {
        errors++;
        firstError ??= `${target} ${name}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => loop(w)));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    ok,
    errors,
    firstError,
    seconds: wall,
    histogram,
    generatorCpuPct: ((cpu.user + cpu.system) / 1e6 / wall) * 100,
    serverCpuPct: ((cpuSeconds(pid) - serverCpu0) / wall) * 100,
    serverRssMiB: rssMiB(pid),
  };
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
  if (m.generatorCpuPct > 90)
    all.push(
      `${operation}: the bench process used ${r1(m.generatorCpuPct)}% CPU: the figure may be the generator's`,
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
    generator_cpu_pct: r1(m.generatorCpuPct),
    notes: all,
  };
}
