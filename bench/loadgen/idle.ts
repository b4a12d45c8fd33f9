// An idle-socket generator for the connections scenario, one process of several, driven over stdin/stdout by
// JSON lines. It opens raw WebSockets over node:net (a hand-written handshake, because only node:net lets a
// client bind a source address: 127.0.0.x spreads the ~28k ephemeral ports per source), waits for each to be
// upgraded (and, for Parley, for its `hello` frame; for Socket.IO, for its namespace's connect), then keeps them
// open and silent (a Socket.IO socket answers its server's pings, or the server would close it); a socket the
// server closes counts as dropped.
//
// stdin:  {"op":"open","count":N,"timeoutMs":T}   -> {"op":"opened","ready":r,"failed":f,"held":h,"ms":..,"cpu_s":..,"errors":[..]}
//         {"op":"held"}                           -> {"op":"held","held":h,"dropped":d}
//         {"op":"close"}                          -> {"op":"closed"} and exit
// config: argv[2] is JSON {port, conns: [{path, token?, port?}], sources: ["127.0.0.2", ...], concurrency,
//         expectHello, socketio?}: a conn's own port is for targets that run as processes on ports of their own

import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import { SUBPROTOCOL_MSGPACKR } from "../../src/realtime/frames.ts";

interface Config {
  port: number;
  conns: Array<{ path: string; token?: string; port?: number }>;
  sources: string[];
  concurrency: number;
  expectHello: boolean;
  /** Engine.IO 4 over the raw socket: "40" to join the default namespace, "3" for every ping "2". */
  socketio?: boolean;
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_ERRORS_KEPT = 5;
const config = JSON.parse(process.argv[2] ?? "{}") as Config;
if (!(config.port > 0) || !config.conns?.length || !config.sources?.length || !(config.concurrency > 0))
  throw new Error(`idle generator: bad config ${process.argv[2]}`);

const open = new Set<net.Socket>();
/**
 * Closed with a reset, not a FIN: a FIN leaves every socket in TIME_WAIT for a minute, and 100,000 of them
 * made the next target's handshakes time out and retry (SYNs answered a second or more later).
 */
function closeAll() {
  for (const s of open) s.resetAndDestroy();
  open.clear();
}
let dropped = 0;
let started = 0;
const errors: string[] = [];
const keepError = (e: string) => {
  if (errors.length < MAX_ERRORS_KEPT) errors.push(e.slice(0, 200));
};

/** One socket: resolves true once upgraded (and greeted, for Parley), false on any failure or timeout. */
function connectOne(i: number, deadline: number): Promise<boolean> {
  const spec = config.conns[i % config.conns.length] as Config["conns"][number];
  const localAddress = config.sources[i % config.sources.length] as string;
  const key = randomBytes(16).toString("base64");
  const accept = createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
  return new Promise((resolve) => {
    let settled = false;
    let upgraded = false;
    let buffered: Buffer = Buffer.alloc(0);
    const port = spec.port ?? config.port;
    const sock = net.connect({ host: "127.0.0.1", port, localAddress });
    const timer = setTimeout(() => fail("timeout"), Math.max(1, deadline - Date.now()));
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      keepError(`${localAddress}: ${why}`);
      sock.destroy();
      resolve(false);
    };
    const ready = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      open.add(sock);
      resolve(true);
    };
    /**
     * Frames after the upgrade: Parley's hello, or Socket.IO's open ("0…", answered "40") and namespace connect
     * ("40…") make a socket ready; once held, a ping ("2") gets its pong ("3") and a close frame from the
     * server counts the socket dropped (a server that waits for the client's close frame would otherwise
     * keep the TCP connection, and the socket would look held).
     */
    const frames = () => {
      for (let frame = frameOf(buffered); frame; frame = frameOf(buffered)) {
        buffered = buffered.subarray(frame.size);
        if (frame.opcode === 0x8) {
          if (!settled) return fail("closed after upgrade");
          if (open.delete(sock)) dropped++;
          sock.destroy();
          return;
        }
        if (config.socketio) {
          if (frame.text === "2") sock.write(maskedText("3"));
          else if (settled) continue;
          else if (frame.text.startsWith("40")) ready();
          else if (frame.text.startsWith("0")) sock.write(maskedText("40"));
          else if (frame.text.startsWith("44")) return fail(`namespace refused: ${frame.text.slice(0, 100)}`);
        } else ready(); // Parley's hello
      }
    };
    sock.on("connect", () => {
      sock.write(
        [
          `GET ${spec.path} HTTP/1.1`,
          `Host: 127.0.0.1:${port}`,
          "Upgrade: websocket",
          "Connection: Upgrade",
          `Sec-WebSocket-Key: ${key}`,
          "Sec-WebSocket-Version: 13",
          ...(spec.token
            ? [`Sec-WebSocket-Protocol: ${SUBPROTOCOL_MSGPACKR}`, `Authorization: Bearer ${spec.token}`]
            : []),
          "",
          "",
        ].join("\r\n"),
      );
    });
    sock.on("data", (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      if (!upgraded) {
        const end = buffered.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString("latin1");
        const ok =
          head.startsWith("HTTP/1.1 101") &&
          head
            .split("\r\n")
            .some((l) => l.toLowerCase().startsWith("sec-websocket-accept:") && l.endsWith(accept));
        if (!ok) return fail(`handshake refused: ${head.split("\r\n")[0]}`);
        upgraded = true;
        buffered = buffered.subarray(end + 4);
        if (!config.expectHello && !config.socketio) ready();
      }
      frames();
    });
    sock.on("error", (e) => fail(e.message));
    sock.on("close", () => {
      if (!settled) return fail("closed during handshake");
      if (open.delete(sock)) dropped++;
    });
  });
}

/** The first whole frame in `buf` (a server's are unmasked): its opcode, its text if a text frame, its size. */
function frameOf(buf: Buffer): { opcode: number; text: string; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const short = (buf[1] as number) & 0x7f;
  const head = short === 126 ? 4 : short === 127 ? 10 : 2;
  if (buf.length < head) return undefined;
  const length = short === 126 ? buf.readUInt16BE(2) : short === 127 ? Number(buf.readBigUInt64BE(2)) : short;
  if (buf.length < head + length) return undefined;
  const opcode = (buf[0] as number) & 0x0f;
  const text = opcode === 0x1 ? buf.toString("utf8", head, head + length) : "";
  return { opcode, text, size: head + length };
}

/** A client's text frame (masked, as a client's must be) of a short payload. */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return frame;
}

async function openMore(count: number, timeoutMs: number) {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const deadline = Date.now() + timeoutMs;
  const first = started;
  started += count;
  let next = 0;
  let ready = 0;
  let failed = 0;
  const lane = async () => {
    for (let k = next++; k < count; k = next++) {
      if (Date.now() > deadline) {
        failed++;
        continue;
      }
      if (await connectOne(first + k, deadline)) ready++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.concurrency, count) }, lane));
  const cpu = process.cpuUsage(cpu0);
  return {
    op: "opened",
    ready,
    failed,
    held: open.size,
    dropped,
    ms: performance.now() - t0,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    errors: errors.splice(0),
  };
}

const reply = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const decoder = new TextDecoder();
let buf = "";
const stdin = Bun.stdin.stream().getReader();
for (;;) {
  const { done, value } = await stdin.read();
  if (done) break;
  buf += decoder.decode(value, { stream: true });
  for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
    const cmd = JSON.parse(buf.slice(0, i)) as { op: string; count?: number; timeoutMs?: number };
    buf = buf.slice(i + 1);
    if (cmd.op === "open") reply(await openMore(cmd.count ?? 0, cmd.timeoutMs ?? 30_000));
    else if (cmd.op === "held") reply({ op: "held", held: open.size, dropped });
    else if (cmd.op === "close") {
      closeAll();
      reply({ op: "closed" });
      process.exit(0);
    }
  }
}
// stdin closed (the parent is gone): close everything and leave.
closeAll();
process.exit(0);
