// The resume storm's Socket.IO clients, one generator process of several, driven over stdin/stdout by
// scenarios/resume.ts with one JSON line per command and one reply each ({"error": …} when it could not).
// Socket.IO 4's own resume is connection state recovery: a client whose connection was lost (not one that
// disconnected on purpose) sends its session id and the offset of the last packet it got when it connects
// again, and the server replays what it missed from the packets it kept in memory. Each member is one
// socket.io-client in its group's room, with reconnection off so that the storm decides when they return.
//
//   {"init": {url, concurrency, members: [{index, group}]}}  -> {"connectMs"}: all connected
//   {"primed": {}}                                          -> {"primedMs"}: each has one packet (an offset)
//   {"down": {}}                                            -> {"down"}: each connection lost (transport close)
//   {"storm": {t0, timeoutMs, expected: {[group]: n}}}      -> {"allCaughtUp", …}: all reconnect at once
//   {"finish": {settleMs}}                                  -> counts per process
//   {"quit": true}                                          -> closes every client and exits

import { io, type Socket } from "socket.io-client";

/** The commands, one JSON line each (resume.ts sends them). */
export type SocketioCommand =
  | { init: { url: string; concurrency: number; members: Array<{ index: number; group: number }> } }
  | { primed: Record<string, never> }
  | { down: Record<string, never> }
  | { storm: { t0: number; timeoutMs: number; expected: Record<string, number> } }
  | { finish: { settleMs: number } };
/** The finish reply: this process's counts. */
export type SocketioFinish = ReturnType<typeof finish>;

interface Member {
  index: number;
  group: number;
  socket?: Socket;
  /** Keys of the storm's packets this member got, with how many times. */
  got: Map<number, number>;
  primed: boolean;
  caughtUpMs: number | null;
  connectedMs: number | null;
  recovered: boolean;
}

let members: Member[] = [];
let expected: Record<string, number> = {};
let stormT0 = 0;
let storming = false;
const now = () => performance.timeOrigin + performance.now();
const reply = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const need = (m: Member) => expected[String(m.group)] ?? 0;

function onMessage(m: Member, frame: { key?: unknown }) {
  if (typeof frame?.key !== "number") {
    m.primed = true; // the primer: any packet gives the client an offset to resume from
    return;
  }
  m.got.set(frame.key, (m.got.get(frame.key) ?? 0) + 1);
  if (storming && m.caughtUpMs === null && m.got.size >= need(m)) m.caughtUpMs = now() - stormT0;
}

async function until(check: () => boolean, ms: number, what: string) {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(10);
  }
}

async function init(url: string, concurrency: number, list: Array<{ index: number; group: number }>) {
  const t0 = performance.now();
  members = list.map((x) => ({
    ...x,
    got: new Map(),
    primed: false,
    caughtUpMs: null,
    connectedMs: null,
    recovered: false,
  }));
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < members.length; i = next++) {
      const m = members[i] as Member;
      const socket = io(url, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        query: { rooms: `g${m.group}` },
      });
      m.socket = socket;
      socket.on("message", (frame) => onMessage(m, frame));
      socket.on("connect", () => {
        if (!storming) return;
        m.connectedMs ??= now() - stormT0;
        m.recovered = socket.recovered;
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", reject);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, members.length) }, lane));
  return { connectMs: performance.now() - t0 };
}

async function storm(t0: number, timeoutMs: number, want: Record<string, number>) {
  expected = want;
  stormT0 = t0;
  storming = true;
  for (const m of members) m.socket?.connect();
  await until(() => members.every((m) => m.caughtUpMs !== null), timeoutMs, "storm").catch(() => {});
  return { allCaughtUp: members.every((m) => m.caughtUpMs !== null) };
}

function finish() {
  let lost = 0;
  let duplicated = 0;
  let clientsWithLoss = 0;
  let delivered = 0;
  for (const m of members) {
    let missing = 0;
    for (let key = 0; key < need(m); key++) {
      const n = m.got.get(key) ?? 0;
      if (n === 0) missing++;
      duplicated += Math.max(0, n - 1);
      delivered += n;
    }
    lost += missing;
    if (missing > 0) clientsWithLoss++;
  }
  return {
    lost,
    duplicated,
    clientsWithLoss,
    delivered,
    recovered: members.filter((m) => m.recovered).length,
    caughtUpMs: members.map((m) => m.caughtUpMs),
    lastConnectedMs: Math.max(0, ...members.map((m) => m.connectedMs ?? 0)),
  };
}

for await (const line of console) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  if (cmd.quit) break;
  try {
    if (cmd.init) reply(await init(cmd.init.url, cmd.init.concurrency, cmd.init.members));
    else if (cmd.primed) {
      const t0 = performance.now();
      await until(() => members.every((m) => m.primed), 30_000, "primed");
      reply({ primedMs: performance.now() - t0 });
    } else if (cmd.down) {
      // A lost connection, as a network drop makes it: the engine closes under the socket (a socket's own
      // disconnect() would tell the server the client left for good, and it would keep nothing).
      for (const m of members) m.socket?.io.engine.close();
      await until(() => members.every((m) => !m.socket?.connected), 30_000, "down");
      reply({ down: true });
    } else if (cmd.storm) reply(await storm(cmd.storm.t0, cmd.storm.timeoutMs, cmd.storm.expected));
    else if (cmd.finish) {
      await Bun.sleep(cmd.finish.settleMs ?? 0);
      reply(finish());
    } else reply({ error: `unknown command ${line.slice(0, 100)}` });
  } catch (err) {
    reply({ error: err instanceof Error ? err.message : String(err) });
  }
}
// quit, or stdin closed (the coordinator is gone): close every client and leave.
for (const m of members) m.socket?.disconnect();
process.exit(0);
