// The resume storm's Socket.IO side (scenarios/resume-socketio.ts, loadgen/resume-socketio.ts): clients
// whose connections were lost, not closed on purpose, get back every packet emitted while they were away
// through Socket.IO's connection state recovery; the counts say so, and would say otherwise.

import { expect, it } from "bun:test";
import { socketioStorm } from "../../bench/scenarios/resume-socketio.ts";

it("recovers every session of a quick storm, with nothing lost or duplicated and every client caught up", async () => {
  const r = await socketioStorm(true, () => {});
  expect(r.target).toBe("socketio");
  expect(r.metrics).toMatchObject({
    clients_caught_up: 500,
    sessions_recovered: 500,
    lost: 0,
    duplicated: 0,
    changes_replayed: 500 * (100 + 10 + 5),
  });
  expect(r.notes?.some((n) => n.startsWith("timed out"))).toBe(false);
}, 90_000);
