// Fuzzes the live gateway with 100,000 seeded hostile frames (msgpack, msgpackr records and JSON);
// FUZZ_SEED=<n> replays.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Packr } from "msgpackr";
import { CLIENT_FRAME_TYPES, type Encoding, SUBPROTOCOLS } from "../../src/realtime/protocol.ts";
import { NUMBERS, Rng, randomString, STRINGS } from "../fuzz.ts";
import { call, type Harness, harness, signup } from "../helpers.ts";
import { connect, type Frame, recordsPackr, type TestSocket } from "./ws-client.ts";

const SEED = Number.parseInt(process.env.FUZZ_SEED ?? "20260101", 10);
const TOTAL = Number.parseInt(process.env.FUZZ_FRAMES ?? "100000", 10);
/** Frames between two pings (the socket drains before the next batch). */
const BATCH = 1000;
/** Frames between two valid `message` frames whose ack is checked. */
const CHECK_EVERY = 10_000;
const MAX_PAYLOAD = 65_536;
/** Generated frames stay under WS_MAX_PAYLOAD: a 1009 close would be the limit working, not a finding. */
const MAX_FRAME = 60_000;

type Payload = string | Uint8Array;
interface Ctx {
  conversation: string;
  messageId: string;
  users: string[];
  sessions: string[];
}

const plain = new Packr({ useRecords: false, mapsAsObjects: true });
/** Other msgpackr dialects: records, structured clone (Map, Set, Date, RegExp, cycles), bigint extension. */
const dialects = [
  new Packr({ useRecords: true }),
  new Packr({ structuredClone: true }),
  new Packr({ useBigIntExtension: true } as ConstructorParameters<typeof Packr>[0]),
];

const JSON_ATOMS = ["NaN", "Infinity", "-0", "1e999", "-1e999", "123456789012345678901234567890", "0.0e-999"];
const TEXT_CHARS = '{}[]":,\\/0123456789eE+-.ntfrulsaxyz _\u0000\ud800\udc00\u00e9💩';

function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

/** A value of any shape, at most `depth` levels deep. */
function weird(rng: Rng, depth = 2): unknown {
  switch (rng.int(depth > 0 ? 12 : 8)) {
    case 0:
      return rng.pick(NUMBERS);
    case 1:
      return rng.pick(STRINGS);
    case 2:
      return randomString(rng);
    case 3:
      return rng.pick([null, undefined, true, false]);
    case 4:
      return randomBytes(rng, rng.size(2048));
    case 5:
      return rng.int(2 ** 31) - 2 ** 30;
    case 6:
      return new Date(rng.pick([0, -1, 8.64e15, Number.NaN]));
    case 7:
      return rng.chance(0.5) ? {} : [];
    case 8:
      return Array.from({ length: rng.int(8) }, () => weird(rng, depth - 1));
    case 9: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(6); i > 0; i--)
        o[rng.chance(0.5) ? rng.pick(STRINGS) : randomString(rng)] = weird(rng, depth - 1);
      return o;
    }
    case 10:
      return DEEP;
    default:
      return rng.pick(CLIENT_FRAME_TYPES);
  }
}

/** Placeholder replaced by deeply nested bytes or text after encoding (encoders recurse; parsers must not die). */
const DEEP = "\u0001deep\u0001";

function id(rng: Rng, real: string[]): string {
  return rng.chance(0.7) ? rng.pick(real) : rng.chance(0.5) ? randomString(rng) : `id${rng.int(1e6)}`;
}

function validFrame(rng: Rng, ctx: Ctx, encoding: Encoding): Record<string, unknown> {
  const type = rng.pick(CLIENT_FRAME_TYPES);
  const frame: Record<string, unknown> = { type };
  if (rng.chance(0.6)) frame.ref = rng.chance(0.5) ? rng.int(1e6) : `r${rng.int(1e6)}`;
  const conversation = () => id(rng, [ctx.conversation]);
  switch (type) {
    case "message":
      frame.conversation_id = conversation();
      frame.client_msg_id = `fz${rng.int(1e9)}`;
      if (rng.chance(0.8)) frame.content = rng.chance(0.5) ? `hi ${rng.int(1e6)}` : randomString(rng);
      if (rng.chance(0.2)) frame.message_type = rng.pick(["text", "image", "file"]);
      if (rng.chance(0.2)) frame.reply_to = id(rng, [ctx.messageId]);
      if (rng.chance(0.1))
        frame.attachments = [
          { file_id: `f${rng.int(100)}`, file_name: "a.png", file_size: 1, mime_type: "image/png" },
        ];
      break;
    case "typing_start":
    case "typing_stop":
      frame.conversation_id = conversation();
      break;
    case "message_ack":
    case "message_read":
      frame.conversation_id = conversation();
      frame.seq = rng.int(50);
      break;
    case "reaction":
      frame.message_id = id(rng, [ctx.messageId]);
      frame.emoji = rng.pick(["👍", "🎉", "x", randomString(rng).slice(0, 8) || "y"]);
      frame.op = rng.pick(["add", "remove"]);
      break;
    case "presence_update":
      frame.status = rng.pick(["online", "away", "dnd", "offline"]);
      break;
    case "key_exchange": {
      frame.to_user_id = id(rng, ctx.users);
      if (rng.chance(0.5)) frame.to_device_id = id(rng, ctx.sessions);
      const bytes = randomBytes(rng, rng.size(1024));
      frame.payload = encoding !== "json" ? bytes : Buffer.from(bytes).toString("base64url");
      break;
    }
    case "resume":
      frame.positions = { [conversation()]: rng.int(30) };
      break;
    case "subscribe":
      frame.channel = `ch${rng.int(50)}`;
      break;
  }
  return frame;
}

function deepMsgpack(rng: Rng): Uint8Array {
  const depth = rng.pick([10, 1000, 20_000, 50_000]);
  const out = new Uint8Array(depth + 1);
  out.fill(rng.chance(0.5) ? 0x91 : 0x81); // fixarray(1) or fixmap(1) whose key is the next level
  out[depth] = 0xc0;
  return out;
}

function deepJson(rng: Rng): string {
  const depth = rng.pick([10, 1000, 10_000, 25_000]);
  return rng.chance(0.5)
    ? `${"[".repeat(depth)}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth / 5)}1${"}".repeat(depth / 5)}`;
}

function encodeValue(rng: Rng, value: unknown, encoding: Encoding): Payload {
  if (encoding !== "json") {
    // Mostly the socket's own: plain maps, or the records of parley.msgpackr.1 with its structures.
    const own = encoding === "msgpackr" ? recordsPackr : plain;
    const packr = rng.chance(0.85) ? own : rng.pick([plain, ...dialects]);
    const bytes = packr.pack(value);
    const marker = plain.pack(DEEP);
    const at = Buffer.from(bytes).indexOf(Buffer.from(marker));
    if (at < 0) return bytes;
    return Buffer.concat([bytes.subarray(0, at), deepMsgpack(rng), bytes.subarray(at + marker.length)]);
  }
  const text =
    JSON.stringify(value, (_k, v: unknown) =>
      typeof v === "bigint" ? Number(v) : v instanceof Uint8Array ? Buffer.from(v).toString("base64url") : v,
    ) ?? "null";
  // JSON.stringify turns NaN and Infinity into null: put literal non-JSON numbers back in now and then.
  const withAtoms = rng.chance(0.2) ? text.replace(/null|-?\d+(\.\d+)?/, rng.pick(JSON_ATOMS)) : text;
  return withAtoms.replaceAll(JSON.stringify(DEEP), () => deepJson(rng));
}

function mutateBytes(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes: Uint8Array = Uint8Array.from(input);
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(bytes.length + 1);
    switch (rng.int(6)) {
      case 0: // truncate
        bytes = bytes.subarray(0, at);
        break;
      case 1: // flip bits
        for (let i = 1 + rng.int(4); i > 0 && bytes.length > 0; i--) {
          const j = rng.int(bytes.length);
          bytes[j] = (bytes[j] as number) ^ (1 << rng.int(8));
        }
        break;
      case 2: // overwrite with a byte parsers treat specially (never-used, ext, 32-bit lengths)
        if (bytes.length > 0)
          bytes[rng.int(bytes.length)] = rng.pick([
            0xc1, 0xc7, 0xd4, 0xd6, 0xdb, 0xdd, 0xdf, 0xc6, 0xcf, 0xff,
          ]);
        break;
      case 3: // insert random bytes
        bytes = Buffer.concat([bytes.subarray(0, at), randomBytes(rng, 1 + rng.int(16)), bytes.subarray(at)]);
        break;
      case 4: // delete a range
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + rng.int(8))]);
        break;
      default: // duplicate the tail
        bytes = Buffer.concat([bytes, bytes.subarray(at)]);
    }
  }
  return bytes;
}

function mutateText(rng: Rng, text: string): string {
  let s = text;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(s.length + 1);
    const chars = () => {
      let c = "";
      for (let i = 1 + rng.int(4); i > 0; i--) c += TEXT_CHARS[rng.int(TEXT_CHARS.length)];
      return c;
    };
    switch (rng.int(4)) {
      case 0:
        s = s.slice(0, at);
        break;
      case 1:
        s = s.slice(0, at) + chars() + s.slice(at + 1);
        break;
      case 2:
        s = s.slice(0, at) + chars() + s.slice(at);
        break;
      default:
        s = s.slice(0, at) + s.slice(at + 1 + rng.int(8));
    }
  }
  return s;
}

/** One hostile frame for a socket of `encoding`; values an encoder refuses become random bytes. */
function hostile(rng: Rng, ctx: Ctx, encoding: Encoding): Payload {
  try {
    return generate(rng, ctx, encoding);
  } catch {
    return randomBytes(rng, rng.size(512));
  }
}

function generate(rng: Rng, ctx: Ctx, encoding: Encoding): Payload {
  const other: Encoding = encoding === "json" ? "msgpack" : "json";
  const roll = rng.int(100);
  if (roll < 8) return encodeValue(rng, validFrame(rng, ctx, encoding), encoding);
  if (roll < 28) {
    // A valid frame with one field of the wrong type (or an extra one).
    const frame = validFrame(rng, ctx, encoding);
    const keys = Object.keys(frame);
    const key = rng.chance(0.8) ? rng.pick(keys) : rng.pick(STRINGS);
    frame[key] = weird(rng);
    return encodeValue(rng, frame, encoding);
  }
  if (roll < 55) {
    const valid = encodeValue(rng, validFrame(rng, ctx, encoding), encoding);
    return typeof valid === "string" && rng.chance(0.7)
      ? mutateText(rng, valid)
      : mutateBytes(rng, typeof valid === "string" ? Buffer.from(valid) : valid);
  }
  if (roll < 65) return randomBytes(rng, rng.size(4096));
  if (roll < 70) return rng.chance(0.5) ? randomString(rng) : rng.pick(JSON_ATOMS);
  if (roll < 80) {
    // The other encoding on this socket: text on the binary one, binary on the JSON one.
    const frame = encodeValue(rng, validFrame(rng, ctx, other), other);
    if (encoding !== "json") return typeof frame === "string" ? frame : Buffer.from(frame).toString("latin1");
    return typeof frame === "string" ? Buffer.from(frame) : frame;
  }
  if (roll < 85)
    return encodeValue(rng, { type: rng.pick(CLIENT_FRAME_TYPES), ref: 1, nested: DEEP }, encoding);
  // Not a frame at all: null, arrays, scalars, unknown or missing types.
  const odd = rng.pick<() => unknown>([
    () => null,
    () => [{ type: "ping" }],
    () => weird(rng, 3),
    () => ({ type: randomString(rng) }),
    () => ({ type: rng.pick(CLIENT_FRAME_TYPES).toUpperCase() }),
    () => ({ ref: "no-type" }),
    () => JSON.parse('{"type":"ping","__proto__":{"type":"message"},"constructor":{"prototype":1}}'),
  ])();
  return encodeValue(rng, odd, encoding);
}

const byteLength = (p: Payload) => (typeof p === "string" ? Buffer.byteLength(p) : p.length);

let h: Harness;
let base: string;
const sockets: TestSocket[] = [];
/** The server runs in this process. bun test also fails the running test on an unhandled error by itself;
 * these collectors catch what reaches the process handlers when it does not. */
const failures: unknown[] = [];
const onFailure = (err: unknown) => failures.push(err);

beforeAll(async () => {
  process.on("unhandledRejection", onFailure);
  process.on("uncaughtException", onFailure);
  h = await harness({
    WS_RATE_PER_SECOND: "1000000",
    WS_RATE_BURST: "1000000",
    WS_MAX_PAYLOAD: String(MAX_PAYLOAD),
    RESUME_MAX: "20",
  });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await h.app.stop(true);
  await h.close();
  process.off("unhandledRejection", onFailure);
  process.off("uncaughtException", onFailure);
});

async function open(user: Awaited<ReturnType<typeof signup>>, encoding: Encoding) {
  const s = await connect(`ws://${base}/ws/${user.id}/${user.session_id}`, [
    SUBPROTOCOLS[encoding],
    `bearer.${user.token}`,
  ]);
  sockets.push(s);
  await s.next((f) => f.type === "hello");
  return s;
}

describe("gateway fuzzing", () => {
  it(`survives ${TOTAL} hostile frames over every encoding and keeps answering valid ones`, async () => {
    console.log(`fuzz: seed ${SEED}, ${TOTAL} frames (replay with FUZZ_SEED=${SEED})`);
    const rng = new Rng(SEED);
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const created = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "group", participant_ids: [bob.id] },
    });
    const first = await call(h.app, "POST", `/api/conversations/${created.body.id}/messages`, {
      token: alice.token,
      body: { content: "seed message" },
    });
    const ctx: Ctx = {
      conversation: created.body.id,
      messageId: first.body.id,
      users: [alice.id, bob.id],
      sessions: [alice.session_id, bob.session_id],
    };
    const fuzzed = {
      msgpack: await open(alice, "msgpack"),
      msgpackr: await open(alice, "msgpackr"),
      json: await open(alice, "json"),
    } as const;
    const encodings = Object.keys(fuzzed) as Encoding[];
    const closes: string[] = [];
    for (const e of encodings)
      void fuzzed[e].closed.then((c) => closes.push(`${e} socket closed ${c.code} ${c.reason}`));

    const recent: { encoding: Encoding; payload: Payload }[] = [];
    /** Waits for a reply, failing with the seed and the last frames sent if the socket closed instead. */
    const reply = (e: Encoding, match: (f: Frame) => boolean, what: string) =>
      Promise.race([
        fuzzed[e].next(match, 15_000),
        fuzzed[e].closed.then((c) => {
          const last = recent
            .slice(-5)
            .map(
              (r) =>
                `${r.encoding}: ${JSON.stringify(typeof r.payload === "string" ? r.payload.slice(0, 300) : Buffer.from(r.payload.subarray(0, 300)).toString("hex"))}`,
            );
          throw new Error(
            `seed ${SEED}: ${e} socket closed (${c.code} ${c.reason}) before ${what}; last frames:\n${last.join("\n")}`,
          );
        }),
      ]);

    const replyCodes = new Map<string, number>();
    let sent = 0;
    let checks = 0;
    let lastSeq = 0;
    const started = Date.now();
    while (sent < TOTAL) {
      const batchEnd = Math.min(TOTAL, sent + BATCH);
      for (; sent < batchEnd; ) {
        const encoding = rng.pick(encodings);
        const payload = hostile(rng, ctx, encoding);
        if (byteLength(payload) > MAX_FRAME) continue;
        fuzzed[encoding].sendRaw(payload);
        recent.push({ encoding, payload });
        if (recent.length > 50) recent.shift();
        sent++;
      }
      // A valid message at a known point: it must still get its ack, with the next seq.
      if (sent % CHECK_EVERY === 0) {
        const e = encodings[checks % encodings.length] as Encoding;
        const ref = `check-${checks++}`;
        fuzzed[e].send({
          type: "message",
          ref,
          conversation_id: ctx.conversation,
          client_msg_id: ref,
          content: ref,
        });
        const ack = await reply(e, (f) => f.type === "ack" && f.ref === ref, `the ack of ${ref}`);
        expect(ack.client_msg_id).toBe(ref);
        expect(ack.seq).toBeGreaterThan(lastSeq);
        lastSeq = ack.seq;
      }
      // Drain: a pong after the batch means the server read every frame before it.
      for (const e of encodings) {
        fuzzed[e].send({ type: "ping", ref: `sync-${sent}` });
        await reply(e, (f) => f.type === "pong" && f.ref === `sync-${sent}`, `the pong after frame ${sent}`);
        for (const f of fuzzed[e].frames.splice(0)) {
          const key = f.type === "error" ? `error:${f.code}` : f.type;
          replyCodes.set(key, (replyCodes.get(key) ?? 0) + 1);
        }
      }
    }
    console.log(
      `fuzz: ${sent} frames in ${Date.now() - started} ms; replies ${JSON.stringify(Object.fromEntries(replyCodes))}`,
    );

    expect(closes).toEqual([]);
    for (const e of encodings) expect(fuzzed[e].ws.readyState).toBe(WebSocket.OPEN);
    expect(checks).toBe(Math.floor(TOTAL / CHECK_EVERY));
    // No frame made a service fail in a way it did not expect.
    expect(replyCodes.get("error:internal") ?? 0).toBe(0);
    const health = await fetch(`http://${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const fresh = await open(bob, "msgpack");
    fresh.send({ type: "ping", ref: "fresh" });
    expect(await fresh.next((f) => f.type === "pong" && f.ref === "fresh")).toBeDefined();
    expect(failures).toEqual([]);
  }, 120_000);
});
