// The connections scenario measures every target in turn: one that fails (to start, or to be measured) is a
// row saying so, and neither the rows before it nor the targets after it are lost (bench/scenarios/connections.ts).

import { describe, expect, it } from "bun:test";
import { startTarget, type TargetName } from "../../bench/lib/targets.ts";
import { connectionsOf } from "../../bench/scenarios/connections.ts";

describe("the connections scenario", () => {
  it("keeps the other targets' rows when one fails to start", async () => {
    const start = (name: TargetName) =>
      name === "node-ws" ? Promise.reject(new Error("node-ws start: process exited")) : startTarget(name);
    const rows = await connectionsOf(
      ["bare-bun", "node-ws", "bare-bun"],
      { quick: true, log: () => {} },
      start,
    );
    expect(rows.map((r) => r.target)).toEqual(["bare-bun", "node-ws", "bare-bun"]);
    expect(rows[0]?.metrics.connections_held).toBe(2000);
    expect(rows[1]?.metrics).toEqual({});
    expect(rows[1]?.notes).toEqual(["failed: Error: node-ws start: process exited"]);
    expect(rows[2]?.metrics.connections_held).toBe(2000);
  }, 60_000);
});
