// The replay cache: one encoding per message version, status and encoding, a new frame for every new
// version or status, the oldest entries dropped past its size.

import { describe, expect, it } from "bun:test";
import { unpack } from "msgpackr";
import { toMessageView } from "../../src/modules/messages/model.ts";
import { ReplayCache } from "../../src/realtime/replay-cache.ts";
import type { MessageRecord } from "../../src/store/types.ts";
import { draft } from "../store/conversations-contract.ts";

const T0 = Date.UTC(2026, 0, 1);
const message = (over: Partial<MessageRecord> = {}): MessageRecord => ({
  ...draft("c-1", "u-alice", {
    id: "m-1",
    client_msg_id: "cm-1",
    content: "hello",
    created_at: T0,
    updated_at: T0,
  }),
  seq: 7,
  version_seq: 7,
  ...over,
});

describe("ReplayCache", () => {
  it("encodes a version once per encoding and gives every socket the same bytes", () => {
    const cache = new ReplayCache();
    const m = message();
    const first = cache.frame(m, "msgpack", "sent");
    expect(cache.frame({ ...m }, "msgpack", "sent")).toBe(first);
    expect(unpack(first as Uint8Array)).toEqual({
      type: "event",
      kind: "message.created",
      conversation_id: "c-1",
      seq: 7,
      message: toMessageView(m),
    });
    const json = cache.frame(m, "json", "sent");
    expect(JSON.parse(json as string)).toEqual(unpack(first as Uint8Array));
    expect(cache.size).toBe(2);
  });

  it("makes a new frame for each new version: changed, then deleted", () => {
    const cache = new ReplayCache();
    cache.frame(message(), "msgpack", "sent");
    const edited = unpack(
      cache.frame(
        message({ version_seq: 9, content: "hello again", edited_at: T0 + 1 }),
        "msgpack",
        "sent",
      ) as Uint8Array,
    );
    expect(edited).toMatchObject({ kind: "message.changed", seq: 9, message: { content: "hello again" } });
    const deleted = unpack(
      cache.frame(message({ version_seq: 12, content: "", deleted: true }), "msgpack", "sent") as Uint8Array,
    );
    expect(deleted).toMatchObject({ kind: "message.deleted", seq: 12, message: { deleted: true } });
    expect(cache.size).toBe(3);
  });

  it("makes a frame for each status of a version, saying that status", () => {
    const cache = new ReplayCache();
    const sent = cache.frame(message(), "msgpack", "sent");
    const read = cache.frame(message(), "msgpack", "read");
    expect(read).not.toEqual(sent);
    expect(unpack(read as Uint8Array)).toMatchObject({ message: { status: "read" } });
    expect(unpack(cache.frame(message(), "msgpack", "delivered") as Uint8Array)).toMatchObject({
      message: { status: "delivered" },
    });
    expect(cache.frame(message(), "msgpack", "read")).toBe(read);
    expect(cache.size).toBe(3);
  });

  it("keeps at most maxBytes of frames, dropping the oldest", () => {
    const one = new ReplayCache().frame(message(), "msgpack", "sent").length;
    const cache = new ReplayCache(one * 4 + 1);
    const a = cache.frame(message({ id: "m-a" }), "msgpack", "sent");
    for (const id of ["m-b", "m-c", "m-d"]) cache.frame(message({ id }), "msgpack", "sent");
    expect([cache.size, cache.heldBytes]).toEqual([4, one * 4]);
    cache.frame(message({ id: "m-e" }), "msgpack", "sent");
    expect([cache.size, cache.heldBytes]).toEqual([4, one * 4]);
    // m-a was dropped: encoded again, to equal bytes in a new array.
    const again = cache.frame(message({ id: "m-a" }), "msgpack", "sent");
    expect(again).not.toBe(a);
    expect(again).toEqual(a);
  });

  it("sends a frame larger than a quarter of the cache without keeping it", () => {
    const cache = new ReplayCache(4096);
    const big = message({ content: "x".repeat(2000) });
    const frame = cache.frame(big, "msgpack", "sent");
    expect(unpack(frame as Uint8Array)).toMatchObject({ message: { content: big.content } });
    expect(cache.size).toBe(0);
    expect(cache.heldBytes).toBe(0);
  });

  it("refuses a size that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new ReplayCache(bad)).toThrow(/maxBytes/);
  });
});
