// Frame encoding: binary MessagePack (msgpackr) or JSON text. Binary fields travel as msgpack bin, and as
// base64url strings in JSON.

import { Packr } from "msgpackr";
import type { Encoding } from "./protocol.ts";

// Plain maps (no records extension) so that any MessagePack client can read the frames.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

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
  return encoding === "msgpack" ? packr.pack(frame) : JSON.stringify(frame, toJsonValue);
}

/** Throws on bytes or text that are not one frame of the encoding. */
export function decode(data: string | Uint8Array, encoding: Encoding): unknown {
  if (encoding === "msgpack") {
    if (typeof data === "string") throw new Error("expected a binary frame");
    return packr.unpack(data);
  }
  const text = typeof data === "string" ? data : new TextDecoder("utf-8", { fatal: true }).decode(data);
  return JSON.parse(text);
}
