// The resume storm: N SDK clients (one user each) in group conversations disconnect, messages, edits and
// deletes are sent, then all reconnect at once and resume; time until every client has caught up, and the
// changes each lost or saw twice (both must be 0).

import { type ConversationEvent, ParleyClient } from "../../src/client/index.ts";
import { Histogram } from "../lib/histogram.ts";
import { startParleyServer } from "../lib/parley-server.ts";
import { pool } from "../lib/proc.ts";
import { seeded, sentence } from "../lib/random.ts";
import { seedAccounts } from "../lib/seed.ts";
import type { Scenario, ScenarioResult } from "../lib/types.ts";

const GROUP_SIZE = 100;
const SENDERS_PER_GROUP = 5;
const SETUP_CONCURRENCY = 200;
const MUTATION_CONCURRENCY = 16;
const SETTLE_MS = 500;

interface Member {
  client: ParleyClient;
  group: number;
  phase: "setup" | "down" | "storm";
  /** The seq it had seen when it disconnected. */
  position: number;
  /** seq -> how often the app saw it after the reconnect. */
  seen: Map<number, number>;
  /** Events that arrived after close() (there should be none). */
  stray: number;
  caughtUpMs?: number;
  connected: boolean;
  onResumed?: () => void;
  onCaughtUp?: () => void;
}

export const resume: Scenario = async ({ quick, log }) => {
  const clients = quick ? 500 : 5_000;
  const perGroup = quick ? 100 : 200;
  const timeoutMs = quick ? 60_000 : 180_000;
  const groups = Math.ceil(clients / GROUP_SIZE);
  const settings = {
    clients,
    groups,
    group_size: GROUP_SIZE,
    users: clients,
    messages_per_group: perGroup,
    edits_per_group: Math.floor(perGroup / 10),
    deletes_per_group: Math.floor(perGroup / 20),
    timeout_s: timeoutMs / 1000,
    encoding: "msgpack",
  };
  const notes: string[] = [];
  const server = await startParleyServer();
  const members: Member[] = [];
  try {
    const run = Math.random().toString(36).slice(2, 8);
    log(`resume: parley on ${server.url}; writing ${clients} accounts (bench/lib/seed.ts)`);
    const t0 = performance.now();
    const adopted = (await seedAccounts(server.env, clients, run)).map((tokens) => {
      const client = new ParleyClient({ baseUrl: server.url, backoff: { minMs: 200, maxMs: 5_000 } });
      client.adopt(tokens);
      return client;
    });
    for (const [i, client] of adopted.entries())
      members.push({
        client,
        group: Math.floor(i / GROUP_SIZE),
        phase: "setup",
        position: 0,
        seen: new Map(),
        stray: 0,
        connected: false,
      });
    const userId = (m: Member) => m.client.session?.user.id as string;
    const inGroup = (g: number) => members.filter((m) => m.group === g);
    const groupIds = await pool(Array.from({ length: groups }), 4, async (_, g) => {
      const [owner, ...rest] = inGroup(g);
      const c = await (owner as Member).client.rest.conversations.create({
        conversation_type: "group",
        name: `storm ${g}`,
        participant_ids: rest.map(userId),
      });
      return c.id;
    });
    const setupSeq = await pool(groupIds, 4, async (id, g) => {
      const owner = inGroup(g)[0] as Member;
      return (await owner.client.rest.conversations.get(id)).last_seq;
    });
    const setupSeconds = (performance.now() - t0) / 1000;
    log(`resume: set up in ${setupSeconds.toFixed(1)} s; connecting ${clients} clients`);

    // Counting happens in handlers registered once: ParleyClient keeps them across connect() calls.
    const storm = { t0: 0, targets: [] as number[], presence: 0, over: false };
    for (const m of members) {
      const id = groupIds[m.group] as string;
      m.client.on("event", (e: ConversationEvent) => {
        if (m.phase === "down") m.stray++;
        if (m.phase !== "storm" || e.conversation_id !== id) return;
        m.seen.set(e.seq, (m.seen.get(e.seq) ?? 0) + 1);
        if (m.caughtUpMs === undefined && e.seq >= (storm.targets[m.group] as number)) {
          m.caughtUpMs = performance.now() - storm.t0;
          m.onCaughtUp?.();
        }
      });
      m.client.on("resumed", (r) => {
        if (r.conversation_id === id) m.onResumed?.();
      });
      m.client.on("presence", () => {
        if (m.phase === "storm") storm.presence++;
      });
    }

    const t1 = performance.now();
    await pool(members, SETUP_CONCURRENCY, async (m) => {
      const resumed = new Promise<void>((resolve) => {
        m.onResumed = resolve;
      });
      const id = groupIds[m.group] as string;
      await m.client.connect({ positions: { [id]: setupSeq[m.group] as number } });
      if (!(await within(resumed, 30_000))) throw new Error("setup: no resumed within 30 s");
      m.onResumed = undefined;
    });
    const connectSeconds = (performance.now() - t1) / 1000;

    log("resume: every client disconnects");
    await Promise.all(
      members.map(async (m) => {
        const rt = m.client.realtime;
        const closed = new Promise<void>((resolve) => rt.on("close", () => resolve()));
        m.phase = "down";
        m.client.close();
        if (!(await within(closed, 30_000))) throw new Error("a client did not see its socket close in 30 s");
        m.position = rt.positions[groupIds[m.group] as string] ?? 0;
      }),
    );

    const { int } = seeded(0x5707);
    log(
      `resume: ${perGroup} messages, ${settings.edits_per_group} edits, ${settings.deletes_per_group} deletes per group`,
    );
    const sends = groupIds.flatMap((id, g) =>
      Array.from({ length: perGroup }, (_, i) => ({ id, g, i, sender: inGroup(g)[i % SENDERS_PER_GROUP] })),
    );
    const sent = await pool(sends, MUTATION_CONCURRENCY, async ({ id, i, sender }) => {
      const message = await (sender as Member).client.rest.messages.send(id, {
        content: sentence(int),
        client_msg_id: crypto.randomUUID(),
      });
      return { i, sender: sender as Member, messageId: message.id };
    });
    await pool(
      sent.filter((s) => s.i % 10 === 3 || s.i % 20 === 7),
      MUTATION_CONCURRENCY,
      async ({ i, sender, messageId }) => {
        if (i % 10 === 3) await sender.client.rest.messages.edit(messageId, `${sentence(int)} (edited)`);
        else await sender.client.rest.messages.delete(messageId);
      },
    );

    // The server's truth: every message changed after a position, once each, at its latest version_seq.
    const expected = new Map<string, Set<number>>();
    for (const [g, id] of groupIds.entries()) {
      const owner = inGroup(g)[0] as Member;
      for (const position of new Set(inGroup(g).map((m) => m.position))) {
        const seqs = new Set<number>();
        let after = position;
        for (let page = 0; page < 1_000; page++) {
          const p = await owner.client.rest.messages.events(id, { after, limit: 1000 });
          for (const item of p.items) seqs.add(item.version_seq);
          storm.targets[g] = p.last_seq;
          const last = p.items.at(-1);
          if (!p.has_more || !last) break;
          after = last.version_seq;
        }
        expected.set(`${g}:${position}`, seqs);
      }
    }
    const replayable = members.reduce((n, m) => n + (expected.get(`${m.group}:${m.position}`)?.size ?? 0), 0);

    log(`resume: ${clients} clients reconnect at once (${replayable} changes to replay)`);
    let connectRetries = 0;
    let connectFailed = 0;
    let lastConnectedMs = 0;
    const caught = members.map(
      (m) =>
        new Promise<void>((resolve) => {
          m.onCaughtUp = resolve;
        }),
    );
    const cpu0 = process.cpuUsage();
    const serverCpu0 = server.cpuSeconds();
    storm.t0 = performance.now();
    const deadline = storm.t0 + timeoutMs;
    for (const m of members) m.phase = "storm";
    const connects = members.map(async (m) => {
      const positions = { [groupIds[m.group] as string]: m.position };
      for (let attempt = 0; !storm.over && performance.now() < deadline; attempt++) {
        try {
          await m.client.connect({ positions });
          m.connected = true;
          lastConnectedMs = Math.max(lastConnectedMs, performance.now() - storm.t0);
          return;
        } catch {
          connectRetries++;
          await Bun.sleep(Math.min(2_000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2));
        }
      }
      connectFailed++;
    });
    const allCaughtUp = await within(Promise.all(caught), timeoutMs);
    const wall = (performance.now() - storm.t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const serverCpuPct = ((server.cpuSeconds() - serverCpu0) / wall) * 100;
    await within(Promise.all(connects), Math.max(0, deadline - performance.now()));
    storm.over = true;
    await Bun.sleep(SETTLE_MS);

    let lost = 0;
    let duplicated = 0;
    let unexpected = 0;
    let delivered = 0;
    let clientsWithLoss = 0;
    const histogram = new Histogram();
    for (const m of members) {
      const want = expected.get(`${m.group}:${m.position}`) ?? new Set<number>();
      let missing = 0;
      for (const seq of want) if (!m.seen.has(seq)) missing++;
      for (const [seq, count] of m.seen) {
        delivered += count;
        duplicated += count - 1;
        if (seq <= m.position) duplicated++;
        else if (!want.has(seq)) unexpected++;
      }
      lost += missing;
      if (missing > 0) clientsWithLoss++;
      if (m.caughtUpMs !== undefined) histogram.record(m.caughtUpMs);
    }
    const caughtUp = members.filter((m) => m.caughtUpMs !== undefined).length;
    const generatorCpuPct = ((cpu.user + cpu.system) / 1e6 / wall) * 100;
    const stray = members.reduce((n, m) => n + m.stray, 0);
    if (!allCaughtUp)
      notes.push(
        `timed out after ${timeoutMs / 1000} s: ${caughtUp} of ${clients} clients caught up; partial figures`,
      );
    if (generatorCpuPct > 90)
      notes.push(
        `the bench process (all ${clients} clients) used ${generatorCpuPct.toFixed(0)}% CPU: the generator ` +
          "is saturated, so the time to caught-up is partly the generator's",
      );
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
        caught_up_s: r1(allCaughtUp ? Math.max(...members.map((m) => m.caughtUpMs ?? 0)) / 1000 : wall),
        all_connected_s: r1(lastConnectedMs / 1000),
        clients_caught_up: caughtUp,
        lost,
        duplicated,
        unexpected,
        clients_with_loss: clientsWithLoss,
        changes_replayed: delivered,
        changes_replayed_per_s: Math.round(delivered / wall),
        presence_frames: storm.presence,
        connect_retries: connectRetries,
        connect_failed: connectFailed,
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
      `resume: ${caughtUp}/${clients} caught up in ${result.metrics.caught_up_s} s; lost ${lost}, duplicated ${duplicated}`,
    );
    return [result];
  } finally {
    for (const m of members) m.client.close();
    await server.stop();
  }
};

/** True when `p` settles within `ms`; false on timeout (the promise is left to settle on its own). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
