// Frame bytes for the SDK, with no Node-only API: MessagePack (msgpackr: plain maps, or the records of
// `parley.msgpackr.1`) or JSON text, and base64url for binary fields in JSON.

import { Packr } from "msgpackr";
import { type Encoding, PLAIN_OPTIONS, recordOptions } from "../realtime/frames.ts";

// The same options as the server's codec: plain maps, or the shared records.
const packers: Record<Exclude<Encoding, "json">, Packr> = {
  msgpack: new Packr(PLAIN_OPTIONS),
  msgpackr: new Packr(recordOptions()),
};

export function encodeFrame(frame: Record<string, unknown>, encoding: Encoding): Uint8Array | string {
  if (encoding !== "json") return packers[encoding].pack(frame);
  return JSON.stringify(frame, (_key, value: unknown) =>
    value instanceof Uint8Array ? toBase64Url(value) : value,
  );
}

/** Decodes what arrived: text is JSON, bytes are MessagePack of the binary encoding in use; throws on garbage. */
export function decodeFrame(data: unknown, encoding: Encoding): unknown {
  if (typeof data === "string") return JSON.parse(data);
  const packr = packers[encoding === "msgpackr" ? "msgpackr" : "msgpack"];
  if (data instanceof ArrayBuffer) return packr.unpack(new Uint8Array(data));
  if (ArrayBuffer.isView(data))
    return packr.unpack(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  throw new TypeError("unexpected frame data");
}

/** An encoded frame's size on the wire, in bytes: text is counted as the UTF-8 it is sent as. */
export function byteSize(data: Uint8Array | string): number {
  if (typeof data !== "string") return data.byteLength;
  let n = data.length;
  for (let i = 0; i < data.length; i++) {
    const c = data.charCodeAt(i);
    // 2 bytes below U+0800, 3 above; a surrogate pair is 4 (2 + 2).
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

export function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** A binary field as plain bytes, whichever encoding carried it. */
export function toBytes(value: unknown): Uint8Array {
  if (typeof value === "string") return fromBase64Url(value);
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError("expected a binary field");
}
