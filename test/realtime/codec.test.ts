// Frame codec: MessagePack frames are read through one reused buffer, so what one frame decoded to must not
// change when the next is read, and each read must see exactly its own bytes.

import { describe, expect, it } from "bun:test";
import { pack } from "msgpackr";
import { decode, encode } from "../../src/realtime/codec.ts";

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
