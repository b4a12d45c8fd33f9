// Frame encoding: binary MessagePack (msgpackr; plain maps, or records with the shared structures of
// `parley.msgpackr.1`) or JSON text. Binary fields travel as msgpack bin, and as base64url strings in JSON.

import { Packr } from "msgpackr";
import { PLAIN_OPTIONS, recordOptions } from "./frames.ts";
import type { Encoding } from "./protocol.ts";

type Binary = Exclude<Encoding, "json">;

const writers: Record<Binary, Packr> = {
  msgpack: new Packr(PLAIN_OPTIONS),
  msgpackr: new Packr(recordOptions()),
};
// Frames are read from one reused buffer: msgpackr makes a DataView of every buffer it reads (and keeps it
// on the buffer), which for the fresh buffer Bun gives each message cost more than copying the frame into
// one that has it already (2.3-2.6 against 1.1-1.3 µs a frame here). Binary fields are copied out of it.
const readers: Record<Binary, Packr> = {
  msgpack: new Packr({ ...PLAIN_OPTIONS, copyBuffers: true }),
  msgpackr: new Packr({ ...recordOptions(), copyBuffers: true }),
};
let scratch = Buffer.allocUnsafe(64 * 1024);

function unpackFrame(data: Uint8Array, encoding: Binary): unknown {
  if (data.length === 0) throw new Error("empty frame");
  if (data.length > scratch.length) scratch = Buffer.allocUnsafe(Math.max(data.length, 2 * scratch.length));
  scratch.set(data);
  return readers[encoding].unpack(scratch, { end: data.length });
}

/** One letter per encoding, for the names of what is kept per encoding (Bun topics, cached frames). */
export const ENCODING_TAG: Record<Encoding, string> = { msgpack: "m", msgpackr: "r", json: "j" };

function toJsonValue(_key: string, value: unknown) {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64url");
  // Buffer.toJSON runs before the replacer sees it.
  if (
    value &&
    typeof value === "object" &&
    (value as { type?: string }).type === "Buffer" &&
    Array.isArray((value as { data?: unknown }).data)
  ) {
    return Buffer.from((value as { data: number[] }).data).toString("base64url");
  }
  return value;
}

export function encode(frame: unknown, encoding: Encoding): Uint8Array | string {
  return encoding === "json" ? JSON.stringify(frame, toJsonValue) : writers[encoding].pack(frame);
}

/** Throws on bytes or text that are not one frame of the encoding. */
export function decode(data: string | Uint8Array, encoding: Encoding): unknown {
  if (encoding !== "json") {
    if (typeof data === "string") throw new Error("expected a binary frame");
    return unpackFrame(data, encoding);
  }
  const text = typeof data === "string" ? data : new TextDecoder("utf-8", { fatal: true }).decode(data);
  return JSON.parse(text);
}
