// A load-generator process: opens its share of the users' sockets, sends at a fixed rate or as fast as a
// window allows, and records end-to-end latency (send timestamp in the payload -> receipt) in a histogram.
// Talks to the parent over stdin/stdout, one JSON line each way (see protocol.ts).

import { Packr } from "msgpackr";
// The server's own reader: frames copied into one reused buffer decode in about half the time of a fresh
// buffer each (src/realtime/codec.ts), and every delivery's decode is the generators' largest cost.
import { decode } from "../../src/realtime/codec.ts";
import { recordOptions, SUBPROTOCOL_MSGPACKR } from "../../src/realtime/frames.ts";
import { Histogram } from "../lib/histogram.ts";
import {
  type Command,
  DRAIN_CAP_MS,
  DRAIN_QUIET_MS,
  type InitCommand,
  type PhaseCommand,
  type PhaseReply,
  type ReadyReply,
  type SenderSpec,
} from "./protocol.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
/** For a socket on which Parley chose its records (parley.msgpackr.1), as its SDK speaks by default. */
const recordsPackr = new Packr(recordOptions());
const now = () => performance.timeOrigin + performance.now();
const OPEN_TIMEOUT_MS = 15_000;
const OPEN_CONCURRENCY = 64;
const PING_EVERY_MS = 20_000;
const STALL_MS = 2_000;

interface Conn {
  index: number;
  send(frame: Record<string, unknown>): void;
  close(): void;
}

// Per-phase counters, reset when the measured window opens.
let measuring = false;
let hist = new Histogram();
let received = 0;
let sentInWindow = 0;
let acks = 0;
let errors = 0;
// Sockets closed since the last phase's reply (or since they opened): reset with each reply, so that a
// close is counted once, by the phase during (or before) which it happened, not by every phase after it.
let closed = 0;
let closeCodes: Record<string, number> = {};
let ready = false;
/** A phase's senders are sending (closed-loop ones are paced by receipts, which outlast the phase). */
let sending = false;
/** When the last chat frame from another user arrived, and how many arrived after sending stopped. */
let lastDeliveryAt = 0;
let draining = false;
let late = 0;

interface SenderState extends SenderSpec {
  sent: number;
  delivered: number;
  lastProgress: number;
  start: number;
}
const senders = new Map<number, SenderState>();
const conns = new Map<number, Conn>();

function reply(obj: unknown) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Every target's frame that carries a chat message: a peer's relayed frame or Parley's message.created event. */
function onFrame(me: number, f: Record<string, unknown> | undefined) {
  if (!f) return;
  let content: unknown;
  if (f.type === "message") content = f.content;
  else if (f.type === "event" && f.kind === "message.created")
    content = (f.message as { content?: unknown } | undefined)?.content;
  else {
    if (f.type === "ack") acks++;
    else if (f.type === "error") errors++;
    return;
  }
  if (typeof content !== "string") return;
  const bar = content.indexOf("|");
  const from = Number(content.slice(bar + 1));
  if (from === me) return; // Parley echoes to the sender's own socket: not a delivery
  lastDeliveryAt = now();
  if (draining) late++;
  if (measuring) {
    hist.record(now() - Number(content.slice(0, bar)));
    received++;
  }
  const s = senders.get(from);
  if (s && s.probe === me) {
    s.delivered++;
    s.lastProgress = now();
    if (s.window && sending) pump(s);
  }
}

function sendOne(s: SenderState) {
  const conn = conns.get(s.conn);
  if (!conn) return;
  s.sent++;
  if (measuring) sentInWindow++;
  conn.send({
    type: "message",
    conversation_id: s.room,
    client_msg_id: `${s.conn}-${s.sent}-${s.start}`,
    content: `${now().toFixed(3)}|${s.conn}`,
  });
}

function pump(s: SenderState) {
  for (let i = 0; i < 1000 && s.sent - s.delivered < (s.window as number); i++) sendOne(s);
}

async function openRaw(index: number, url: string, protocols: string[], expectHello: boolean): Promise<Conn> {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  let ping: Timer | undefined;
  // The server's choice, known once open (before any frame).
  const records = () => ws.protocol === SUBPROTOCOL_MSGPACKR;
  const conn: Conn = {
    index,
    send: (frame) => ws.send((records() ? recordsPackr : packr).pack(frame)),
    close: () => {
      clearInterval(ping);
      ws.close();
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`open ${url}: timeout`)), OPEN_TIMEOUT_MS);
    ws.onmessage = (e) => {
      const encoding = records() ? "msgpackr" : "msgpack";
      const f = decode(new Uint8Array(e.data as ArrayBuffer), encoding) as Record<string, unknown>;
      if (f?.type === "hello") {
        clearTimeout(timer);
        resolve();
        return;
      }
      onFrame(index, f);
    };
    ws.onopen = () => {
      if (!expectHello) {
        clearTimeout(timer);
        resolve();
      }
    };
    ws.onerror = () => reject(new Error(`open ${url}: failed`));
    ws.onclose = (e) => {
      clearInterval(ping);
      if (ready) {
        closed++;
        closeCodes[e.code] = (closeCodes[e.code] ?? 0) + 1;
      }
      reject(new Error(`open ${url}: closed ${e.code}`));
    };
  });
  // Parley closes sockets that stay silent past the heartbeat; peers ignore frames without conversation_id.
  if (expectHello) ping = setInterval(() => conn.send({ type: "ping" }), PING_EVERY_MS);
  return conn;
}

async function openSocketIo(index: number, url: string, query: Record<string, string>): Promise<Conn> {
  const { io } = await import("socket.io-client");
  const socket = io(url, { transports: ["websocket"], query, forceNew: true, reconnection: false });
  socket.on("message", (f: Record<string, unknown>) => onFrame(index, f));
  socket.on("disconnect", (reason: string) => {
    if (ready) {
      closed++;
      closeCodes[reason] = (closeCodes[reason] ?? 0) + 1;
    }
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket.io ${url}: timeout`)), OPEN_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("connect_error", (err: Error) => reject(err));
  });
  return { index, send: (frame) => socket.emit("message", frame), close: () => socket.close() };
}

async function init({ init: cfg }: InitCommand) {
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;
  const run = async () => {
    for (let i = next++; i < cfg.conns.length; i = next++) {
      const { index, spec } = cfg.conns[i] as InitCommand["init"]["conns"][number];
      try {
        const conn =
          cfg.mode === "socketio"
            ? await openSocketIo(index, spec.url, spec.query ?? {})
            : await openRaw(index, spec.url, spec.protocols ?? [], cfg.expectHello);
        conns.set(index, conn);
      } catch (err) {
        failed++;
        firstError ??= String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, run));
  ready = true;
  reply({ ready: conns.size, failed, firstError } satisfies ReadyReply);
}

async function phase({ phase: p }: PhaseCommand) {
  senders.clear();
  const t0 = now();
  for (const spec of p.senders) {
    // Open-loop senders start at random offsets within one period, so thousands do not fire in step.
    const offset = spec.rate ? Math.random() * (1000 / spec.rate) : 0;
    senders.set(spec.conn, { ...spec, sent: 0, delivered: 0, lastProgress: t0, start: t0 + offset });
  }
  let stalls = 0;
  sending = true;
  const tick = () => {
    if (!sending) return;
    const t = now();
    for (const s of senders.values()) {
      if (s.window) {
        if (t - s.lastProgress > STALL_MS) {
          // A lost message (closed socket) would stop a closed loop for good: count it and move on.
          stalls++;
          s.delivered = s.sent;
          s.lastProgress = t;
        }
        pump(s);
      } else if (s.rate && t >= s.start) {
        const due = Math.floor(((t - s.start) * s.rate) / 1000) + 1 - s.sent;
        for (let i = 0; i < Math.min(due, 1000); i++) sendOne(s);
      }
    }
  };
  const timer = setInterval(tick, senders.size > 500 ? 20 : 2);
  tick();
  await Bun.sleep(p.warmupMs);
  hist = new Histogram();
  received = 0;
  sentInWindow = 0;
  acks = 0;
  errors = 0;
  stalls = 0;
  const cpu0 = process.cpuUsage();
  const w0 = now();
  measuring = true;
  await Bun.sleep(p.measureMs);
  measuring = false;
  const measureMs = now() - w0;
  const cpu = process.cpuUsage(cpu0);
  const result = {
    sent: sentInWindow,
    received,
    hist: hist.toJSON(),
    measureMs,
    cpuPct: Math.round(((cpu.user + cpu.system) / 1000 / measureMs) * 1000) / 10,
    acks,
    errors,
    stalls,
  };
  sending = false;
  clearInterval(timer);
  // Let queues empty before the next phase: at least drainMs, then until deliveries stop.
  const stopped = now();
  late = 0;
  draining = true;
  await Bun.sleep(p.drainMs);
  while (now() - lastDeliveryAt < DRAIN_QUIET_MS && now() - stopped < DRAIN_CAP_MS) await Bun.sleep(25);
  draining = false;
  reply({ ...result, closed, closeCodes, drainMs: Math.round(now() - stopped), late } satisfies PhaseReply);
  closed = 0;
  closeCodes = {};
}

for await (const line of console) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line) as Command;
  if ("init" in cmd) await init(cmd);
  else if ("phase" in cmd) await phase(cmd);
  else {
    for (const c of conns.values()) c.close();
    await Bun.sleep(100);
    process.exit(0);
  }
}
process.exit(0);
