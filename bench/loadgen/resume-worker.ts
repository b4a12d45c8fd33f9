// A generator process of the resume storm (scenarios/resume.ts): holds its share of the SDK clients (whole
// groups), connects them, drops them, reconnects them all at once on command and counts what each app sees
// per seq; at the end it checks those counts against the expected changes the coordinator sent. Talks to
// the coordinator over stdin/stdout, one JSON line each way (see resume-protocol.ts).

import { type ConversationEvent, ParleyClient } from "../../src/client/index.ts";
import { within } from "../../src/lib/within.ts";
import { pool } from "../lib/proc.ts";
import type {
  CaughtReply,
  DownReply,
  ExpectCommand,
  ExpectReply,
  FinishReply,
  InitCommand,
  InitReply,
  ResumeCommand,
  StormCommand,
} from "./resume-protocol.ts";

/** The clock shared with the coordinator and the other generators: ms since the epoch, sub-ms resolution. */
const now = () => performance.timeOrigin + performance.now();
const SETUP_RESUMED_MS = 30_000;
const CLOSE_MS = 30_000;

interface Member {
  index: number;
  group: number;
  conversationId: string;
  client: ParleyClient;
  phase: "setup" | "down" | "storm";
  /** The seq it had seen when it disconnected. */
  position: number;
  /** seq -> how often the app saw it after the reconnect. */
  seen: Map<number, number>;
  /** Events that arrived after close() (there should be none). */
  stray: number;
  caughtUpMs?: number;
  onResumed?: () => void;
  onCaughtUp?: () => void;
}

const members: Member[] = [];
const storm = {
  t0: 0,
  deadline: 0,
  /** group -> the last seq its members must see. */
  targets: new Map<number, number>(),
  /** `${group}:${position}` -> the version_seqs changed after it. */
  expected: new Map<string, Set<number>>(),
  presence: 0,
  over: false,
  retries: 0,
  failed: 0,
  lastConnectedMs: 0,
  connects: [] as Promise<void>[],
};

function reply(obj: unknown) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function init({ init: cfg }: InitCommand): Promise<InitReply> {
  for (const spec of cfg.members) {
    // autoAck: false, as the SDK was before it acked deliveries itself: with it, each member would also
    // write a message_ack after its catch-up (and the server fan out each receipt to the group), frames
    // and store writes the earlier runs did not have, and the storm's numbers would not compare with theirs.
    const client = new ParleyClient({
      baseUrl: cfg.baseUrl,
      backoff: { minMs: 200, maxMs: 5_000 },
      autoAck: false,
    });
    client.adopt(spec.tokens);
    const m: Member = {
      index: spec.index,
      group: spec.group,
      conversationId: spec.conversationId,
      client,
      phase: "setup",
      position: 0,
      seen: new Map(),
      stray: 0,
    };
    members.push(m);
    // Counting happens in handlers registered once: ParleyClient keeps them across connect() calls.
    client.on("event", (e: ConversationEvent) => {
      if (m.phase === "down") m.stray++;
      if (m.phase !== "storm" || e.conversation_id !== m.conversationId) return;
      m.seen.set(e.seq, (m.seen.get(e.seq) ?? 0) + 1);
      if (m.caughtUpMs === undefined && e.seq >= (storm.targets.get(m.group) as number)) {
        m.caughtUpMs = now() - storm.t0;
        m.onCaughtUp?.();
      }
    });
    client.on("resumed", (r) => {
      if (r.conversation_id === m.conversationId) m.onResumed?.();
    });
    client.on("presence", () => {
      if (m.phase === "storm") storm.presence++;
    });
  }
  const setupSeq = new Map(cfg.members.map((s) => [s.index, s.setupSeq]));
  const t0 = performance.now();
  await pool(members, cfg.concurrency, async (m) => {
    const resumed = new Promise<boolean>((resolve) => {
      m.onResumed = () => resolve(true);
    });
    await m.client.connect({ positions: { [m.conversationId]: setupSeq.get(m.index) as number } });
    if (!(await within(resumed, SETUP_RESUMED_MS, () => false)))
      throw new Error(`setup: no resumed within ${SETUP_RESUMED_MS / 1000} s`);
    m.onResumed = undefined;
  });
  return { connectMs: performance.now() - t0 };
}

async function down(): Promise<DownReply> {
  await Promise.all(
    members.map(async (m) => {
      const rt = m.client.realtime;
      const closed = new Promise<boolean>((resolve) => rt.on("close", () => resolve(true)));
      m.phase = "down";
      m.client.close();
      if (!(await within(closed, CLOSE_MS, () => false)))
        throw new Error(`a client did not see its socket close in ${CLOSE_MS / 1000} s`);
      m.position = rt.positions[m.conversationId] ?? 0;
    }),
  );
  return { positions: members.map((m) => [m.index, m.position]) };
}

function expect({ expect: e }: ExpectCommand): ExpectReply {
  for (const { group, lastSeq } of e.targets) storm.targets.set(group, lastSeq);
  for (const { group, position, seqs } of e.expected)
    storm.expected.set(`${group}:${position}`, new Set(seqs));
  for (const m of members) {
    if (!storm.targets.has(m.group)) throw new Error(`expect: no target for group ${m.group}`);
    if (!storm.expected.has(`${m.group}:${m.position}`))
      throw new Error(`expect: no expected changes for group ${m.group} after ${m.position}`);
  }
  return {
    expecting: members.reduce((n, m) => n + (storm.expected.get(`${m.group}:${m.position}`)?.size ?? 0), 0),
  };
}

async function startStorm({ storm: s }: StormCommand): Promise<CaughtReply> {
  storm.t0 = s.t0;
  storm.deadline = s.t0 + s.timeoutMs;
  const caught = members.map(
    (m) =>
      new Promise<void>((resolve) => {
        m.onCaughtUp = resolve;
      }),
  );
  for (const m of members) m.phase = "storm";
  storm.connects = members.map(async (m) => {
    const positions = { [m.conversationId]: m.position };
    for (let attempt = 0; !storm.over && now() < storm.deadline; attempt++) {
      try {
        await m.client.connect({ positions });
        storm.lastConnectedMs = Math.max(storm.lastConnectedMs, now() - storm.t0);
        return;
      } catch {
        storm.retries++;
        await Bun.sleep(Math.min(2_000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2));
      }
    }
    storm.failed++;
  });
  const allCaughtUp = await within(
    Promise.all(caught).then(() => true),
    Math.max(0, storm.deadline - now()),
    () => false,
  );
  return { allCaughtUp, caughtUp: members.filter((m) => m.caughtUpMs !== undefined).length };
}

async function finish(settleMs: number): Promise<FinishReply> {
  await within(
    Promise.all(storm.connects).then(() => true),
    Math.max(0, storm.deadline - now()),
    () => false,
  );
  storm.over = true;
  await Bun.sleep(settleMs);
  let lost = 0;
  let duplicated = 0;
  let unexpected = 0;
  let delivered = 0;
  let clientsWithLoss = 0;
  for (const m of members) {
    const want = storm.expected.get(`${m.group}:${m.position}`) ?? new Set<number>();
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
  }
  return {
    caughtUpMs: members.map((m) => m.caughtUpMs ?? null),
    lastConnectedMs: storm.lastConnectedMs,
    connectRetries: storm.retries,
    connectFailed: storm.failed,
    lost,
    duplicated,
    unexpected,
    delivered,
    clientsWithLoss,
    stray: members.reduce((n, m) => n + m.stray, 0),
    presence: storm.presence,
  };
}

function closeAll() {
  storm.over = true;
  for (const m of members) m.client.close();
}

for await (const line of console) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line) as ResumeCommand;
  if ("quit" in cmd) break;
  try {
    if ("init" in cmd) reply(await init(cmd));
    else if ("down" in cmd) reply(await down());
    else if ("expect" in cmd) reply(expect(cmd));
    else if ("storm" in cmd) reply(await startStorm(cmd));
    else if ("finish" in cmd) reply(await finish(cmd.finish.settleMs));
    else reply({ error: `unknown command ${line.slice(0, 80)}` });
  } catch (err) {
    reply({ error: String(err) });
  }
}
// quit, or stdin closed (the coordinator is gone): close every client and leave.
closeAll();
await Bun.sleep(100);
process.exit(0);
