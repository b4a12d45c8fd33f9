// The in-process broker: alone it is one node with nothing to send to; on a shared MemoryBus, apps of one
// process are nodes of one cluster, held to the same contract as Redis.

import { describe, expect, it } from "bun:test";
import { MemoryBroker, MemoryBus } from "../../src/broker/memory.ts";
import { brokerContract } from "./contract.ts";

brokerContract("memory bus", (n) => {
  const bus = new MemoryBus();
  return Array.from({ length: n }, () => new MemoryBroker(bus));
});

describe("MemoryBroker alone", () => {
  it("is not shared, and still counts its users' sockets", async () => {
    const broker = new MemoryBroker();
    expect(broker.shared).toBe(false);
    expect(await broker.countSockets("u-1", 1)).toBe(1);
    expect(await broker.countSockets("u-1", 1)).toBe(2);
    expect(await broker.countSockets("u-1", -1)).toBe(1);
    expect(await broker.countSockets("u-1", 0)).toBe(1);
    expect(await broker.sweepDeadNodes()).toEqual([]);
    await broker.close();
  });
});
