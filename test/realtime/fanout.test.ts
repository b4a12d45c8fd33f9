// Fanout.publishEach: one frame to many topics (presence goes to every peer of a user) is encoded once per
// encoding spoken on the node, and published only where someone listens. The server is a recorder.

import { describe, expect, it } from "bun:test";
import type { Server } from "bun";
import { unpack } from "msgpackr";
import { Connections, type Socket } from "../../src/realtime/connections.ts";
import { Fanout, topics } from "../../src/realtime/fanout.ts";
import type { ServerFrame } from "../../src/realtime/protocol.ts";

function setup(listening: string[], encodings: ("msgpack" | "json")[]) {
  const connections = new Connections();
  for (const encoding of encodings)
    connections.add({ data: { kind: "public", encoding } } as unknown as Socket);
  const published: { topic: string; data: Uint8Array | string }[] = [];
  const server = {
    subscriberCount: (topic: string) => (listening.includes(topic) ? 1 : 0),
    publish: (topic: string, data: Uint8Array | string) => {
      published.push({ topic, data });
      return 1;
    },
  };
  const fanout = new Fanout(connections);
  fanout.attach(server as unknown as Server<unknown>);
  return { fanout, published };
}

const frame: ServerFrame = { type: "presence", user_id: "u-1", status: "online", last_seen: null };

describe("Fanout.publishEach", () => {
  it("encodes once for every topic with subscribers and skips the rest", () => {
    const listening = ["u-2", "u-3", "u-5"].map((id) => topics.user(id, "msgpack"));
    const { fanout, published } = setup(listening, ["msgpack"]);
    fanout.publishEach(["u-2", "u-3", "u-4", "u-5"], topics.user, frame);
    expect(published.map((p) => p.topic)).toEqual(listening);
    // The same bytes, not three encodings of the frame.
    expect(new Set(published.map((p) => p.data)).size).toBe(1);
    expect(unpack(published[0]?.data as Uint8Array)).toEqual(frame);
  });

  it("encodes for each encoding spoken, and not at all when nobody listens", () => {
    const listening = [topics.user("u-2", "msgpack"), topics.user("u-2", "json"), topics.user("u-3", "json")];
    const { fanout, published } = setup(listening, ["msgpack", "json"]);
    fanout.publishEach(["u-2", "u-3"], topics.user, frame);
    expect(published.map((p) => p.topic)).toEqual(listening);
    expect(typeof published[0]?.data).not.toBe("string");
    expect(JSON.parse(published[1]?.data as string)).toEqual(frame);
    expect(published[2]?.data).toBe(published[1]?.data as string);

    const quiet = setup([], ["msgpack", "json"]);
    quiet.fanout.publishEach(["u-9"], topics.user, frame);
    expect(quiet.published).toEqual([]);
  });
});
