// Frame codec: MessagePack frames are read through one reused buffer, so what one frame decoded to must not
// change when the next is read, and each read must see exactly its own bytes.

import { describe, expect, it } from "bun:test";
import { Packr, pack } from "msgpackr";
import { decode, encode } from "../../src/realtime/codec.ts";
import { RECORD_STRUCTURES } from "../../src/realtime/frames.ts";

describe("msgpack frames", () => {
  it("round-trips a frame, binary fields included", () => {
    const frame = { type: "key_exchange", to_user_id: "u1", payload: new Uint8Array([1, 2, 3]) };
    const back = decode(encode(frame, "msgpack") as Uint8Array, "msgpack") as typeof frame;
    expect(back.type).toBe("key_exchange");
    expect([...back.payload]).toEqual([1, 2, 3]);
  });

  it("keeps a decoded binary field when the next frame is read", () => {
    const first = decode(
      pack({ type: "key_exchange", payload: new Uint8Array([7, 7, 7, 7]) }),
      "msgpack",
    ) as {
      payload: Uint8Array;
    };
    decode(pack({ type: "key_exchange", payload: new Uint8Array([9, 9, 9, 9]) }), "msgpack");
    expect([...first.payload]).toEqual([7, 7, 7, 7]);
  });

  it("reads only the frame's own bytes after a larger frame", () => {
    const big = { type: "message", content: "x".repeat(200_000) };
    expect((decode(pack(big), "msgpack") as typeof big).content.length).toBe(200_000);
    expect(decode(pack({ type: "ping", ref: 1 }), "msgpack")).toEqual({ type: "ping", ref: 1 });
    // A string cut short must fail, not run on into what the larger frame left behind.
    const cut = pack({ type: "message", content: "y".repeat(100) }).subarray(0, 40);
    expect(() => decode(cut, "msgpack")).toThrow();
  });

  it("refuses an empty frame, trailing bytes and text", () => {
    expect(() => decode(new Uint8Array(0), "msgpack")).toThrow();
    const ping = pack({ type: "ping" });
    const padded = new Uint8Array(ping.length + 1);
    padded.set(ping);
    expect(() => decode(padded, "msgpack")).toThrow();
    expect(() => decode('{"type":"ping"}', "msgpack")).toThrow("expected a binary frame");
  });
});

describe("msgpackr records (parley.msgpackr.1)", () => {
  it("round-trips every shared structure, maps it does not share, binary fields and the integers records use", () => {
    const frames = [
      ...RECORD_STRUCTURES.map((keys) =>
        Object.fromEntries(keys.map((k, i) => [k, i % 2 ? 64 + i : `v${i}`])),
      ),
      {
        type: "event",
        kind: "message.created",
        conversation_id: "c",
        seq: 127,
        message: { id: "m", extra: [1] },
      },
      { type: "key_exchange", payload: new Uint8Array([64, 65, 127]), n: -64, big: 2 ** 40 },
      { z: 1, type: "ping" },
      // More shapes in one frame than msgpackr has one-byte ids for.
      { type: "x", items: Array.from({ length: 200 }, (_, i) => ({ [`k${i}`]: i, [`j${i}`]: `v${i}` })) },
    ];
    for (const frame of frames) {
      const bytes = encode(frame, "msgpackr") as Uint8Array;
      const back = decode(bytes, "msgpackr") as Record<string, unknown>;
      expect(back).toEqual(frame);
      if ("payload" in back) expect(back.payload).toBeInstanceOf(Uint8Array);
    }
  });

  it("keeps the keys of a live message out of its frame", () => {
    const live = {
      type: "event",
      kind: "message.created",
      conversation_id: "01m8n90j4pqgr7vjfwtv",
      seq: 123456,
      message: {
        id: "01m8n90j4preffj23xmq",
        sender_id: "01m8n90j4pe3hv3dd6ay",
        content: "hi",
        created_at: "2026-11-30T03:47:08.566Z",
        client_msg_id: "0baae4cf-c862-4e21-9c80-9e107104a11d",
      },
    };
    const plain = (encode(live, "msgpack") as Uint8Array).length;
    const records = (encode(live, "msgpackr") as Uint8Array).length;
    // 10 keys of 2-15 bytes each: ~90 bytes fewer.
    expect(plain - records).toBeGreaterThan(80);
  });

  it("has structures that are distinct lists of distinct keys", () => {
    const lists = RECORD_STRUCTURES.map((keys) => keys.join(","));
    expect(new Set(lists).size).toBe(lists.length);
    for (const keys of RECORD_STRUCTURES) expect(new Set(keys).size).toBe(keys.length);
  });

  it("refuses plain MessagePack whose integer reads as a structure, and garbage", () => {
    expect(() => decode(pack({ type: "ping", ref: 64 }), "msgpackr")).toThrow();
    expect(() => decode(new Uint8Array([0xc1, 0xff]), "msgpackr")).toThrow();
    expect(() => decode("text", "msgpackr")).toThrow("expected a binary frame");
  });
});

describe("msgpackr records from a hostile client", () => {
  it("reads a frame that defines its own record under a shared id, and the shared one after it as before", () => {
    // A msgpackr encoder with no shared structures gives its first record the id of our first structure.
    const own = new Packr({ useRecords: true, maxSharedStructures: 0, mapsAsObjects: true });
    const hostile = own.pack({ a: 1, b: 2, c: 3, d: 4, e: 5 });
    expect(decode(hostile, "msgpackr")).toEqual({ a: 1, b: 2, c: 3, d: 4, e: 5 });
    const live = {
      type: "event",
      kind: "message.created",
      conversation_id: "c",
      seq: 1,
      message: { id: "m" },
    };
    expect(decode(encode(live, "msgpackr") as Uint8Array, "msgpackr")).toEqual(live);
    // Also when the hostile frame fails half way through.
    expect(() => decode(hostile.subarray(0, hostile.length - 1), "msgpackr")).toThrow();
    expect(decode(encode(live, "msgpackr") as Uint8Array, "msgpackr")).toEqual(live);
  });
});
