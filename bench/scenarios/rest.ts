// The rest scenario: sign-ins, history pages and REST sends per second against a real Parley process, from
// bounded concurrent fetch loops in the bench process (the SDK's RestClient), with latency per operation.

import { ParleyClient, RestClient } from "../../src/client/index.ts";
import { loadConfig } from "../../src/config.ts";
import { Histogram } from "../lib/histogram.ts";
import { type ParleyServer, startParleyServer } from "../lib/parley-server.ts";
import { pool } from "../lib/proc.ts";
import { seeded, sentence } from "../lib/random.ts";
import { BENCH_PASSWORD, seedAccounts } from "../lib/seed.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";

const CONCURRENCY = 32;
const USERS = 8;
const HISTORY_MESSAGES = 10_000;
const PAGE = 50;
/** A safety bound on every loop besides its deadline. */
const MAX_OPS_PER_LOOP = 1_000_000;

export const rest: Scenario = async ({ quick, log }) => {
  const seconds = quick ? 3 : 20;
  const server = await startParleyServer();
  try {
    const { int } = seeded(0x7e57);
    const run = Math.random().toString(36).slice(2, 8);
    log(`rest: parley on ${server.url}; writing ${USERS} accounts (bench/lib/seed.ts)`);
    const accounts = await seedAccounts(server.env, USERS, run);
    const users = accounts.map((tokens) => {
      const client = new ParleyClient({ baseUrl: server.url });
      client.adopt(tokens);
      return client;
    });
    const owner = users[0] as ParleyClient;
    const conversation = await owner.rest.conversations.create({
      conversation_type: "group",
      name: "rest bench",
      participant_ids: users.slice(1).map((u) => u.session?.user.id as string),
    });
    const settings = { seconds, concurrency: CONCURRENCY, users: USERS, log_level: "info" };
    const results: ScenarioResult[] = [];
    const send = (w: number) =>
      (users[w % USERS] as ParleyClient).rest.messages.send(conversation.id, {
        content: sentence(int),
        client_msg_id: crypto.randomUUID(),
      });

    log(`rest: send over REST for ${seconds} s`);
    const sent = await measure(server, "send", seconds, async (w) => {
      await send(w);
    });
    results.push(result("send", { ...settings, conversation_members: USERS }, sent));

    const missing = Math.max(0, HISTORY_MESSAGES - sent.ok);
    log(`rest: filling the conversation to ${HISTORY_MESSAGES} messages (${missing} more)`);
    await pool(Array.from({ length: missing }), CONCURRENCY, (_, i) => send(i));
    const lastSeq = (await owner.rest.conversations.get(conversation.id)).last_seq;

    log(`rest: history pages (limit ${PAGE}) for ${seconds} s`);
    const pages = await measure(server, "history page", seconds, async (w) => {
      const before = int(PAGE + 1, lastSeq + 1);
      const page = await (users[w % USERS] as ParleyClient).rest.messages.page(conversation.id, {
        before,
        limit: PAGE,
      });
      if (page.items.length !== PAGE || page.items.at(-1)?.seq !== before - 1)
        throw new Error(`page before ${before}: ${page.items.length} items`);
    });
    results.push(
      result("history page", { ...settings, messages: lastSeq, limit: PAGE, before: "uniform" }, pages),
    );

    log(`rest: sign-ins for ${seconds} s (argon2id: CPU-bound by design)`);
    const anonymous = new RestClient({ baseUrl: server.url });
    const signins = await measure(server, "signin", seconds, async (w) => {
      const username = (accounts[w % USERS] as (typeof accounts)[number]).user.username;
      await anonymous.signin({ username, password: BENCH_PASSWORD });
    });
    const { config } = loadConfig(server.env);
    const hash = `argon2id ${config.PASSWORD_HASH_MEMORY_KIB} KiB × ${config.PASSWORD_HASH_TIME} passes`;
    const signin = result("signin", { ...settings, hash }, signins);
    signin.notes?.push(
      "argon2id makes each sign-in cost tens of ms of CPU on purpose (against password guessing); " +
        "the rate is bounded by the server's cores, not by its request path",
    );
    results.push(signin);

    for (const u of users) u.close();
    return results;
  } finally {
    await server.stop();
  }
};

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
  server: ParleyServer,
  name: string,
  seconds: number,
  op: (worker: number) => Promise<void>,
): Promise<Measured> {
  const histogram = new Histogram();
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = process.cpuUsage();
  const serverCpu0 = server.cpuSeconds();
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
        firstError ??= `${name}: ${err instanceof Error ? err.message : String(err)}`;
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
    serverCpuPct: ((server.cpuSeconds() - serverCpu0) / wall) * 100,
    serverRssMiB: server.rssBytes() / 2 ** 20,
  };
}

function result(operation: string, settings: Record<string, unknown>, m: Measured): ScenarioResult {
  const r1 = (n: number) => Math.round(n * 10) / 10;
  const notes = ["one Parley process at LOG_LEVEL=info (a JSON log line per request, drained by the bench)"];
  if (m.firstError) notes.push(`${m.errors} errors; first: ${m.firstError}`);
  if (m.generatorCpuPct > 90)
    notes.push(`the bench process used ${r1(m.generatorCpuPct)}% CPU: the figure may be the generator's`);
  return {
    scenario: "rest",
    target: "parley",
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
    notes,
  };
}
