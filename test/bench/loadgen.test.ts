// The load generator against the bare Bun ceiling (the cheapest target to start): a closed-loop phase
// delivers, stops sending when it ends, and waits for what is still in flight before it reports, so the
// next phase does not measure this one's queues. And against Parley, whose frames it reads as records.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { startTarget, type Target } from "../../bench/lib/targets.ts";
import { type Load, openLoad } from "../../bench/loadgen/run.ts";

let target: Target;
let load: Load;
let room: string;

beforeAll(async () => {
  target = await startTarget("bare-bun");
  const prepared = await target.prepare(4, [[0, 1, 2, 3]]);
  room = prepared.roomIds[0] as string;
  load = await openLoad(prepared, target.pid, 1);
}, 30_000);
afterAll(async () => {
  await load?.close();
  await target?.stop();
});

const timing = { warmupMs: 200, measureMs: 500, drainMs: 200 };

it("stops a closed-loop sender with its phase and reports the backlog it drained", async () => {
  const max = await load.phase([{ conn: 0, room, probe: 1, window: 32 }], timing);
  expect(max.received).toBeGreaterThan(0);
  // Still sending, it would keep deliveries coming (~100,000 a second here) until the 30 s cap; stopped,
  // about its window (32 messages to 3 receivers) is left to arrive, a little more for a receiver that
  // lags the probe.
  expect(max.drainMs).toBeLessThan(5_000);
  expect(max.late).toBeLessThan(2_000);
  // A phase with no sender receives nothing: the closed loop did not outlive its phase.
  const idle = await load.phase([], timing);
  expect(idle.received).toBe(0);
  expect(idle.sent).toBe(0);
}, 20_000);

it("counts a socket closed in one phase in that phase alone, not in every phase after it", async () => {
  const ceiling = await startTarget("bare-bun");
  let stopped = false;
  let lost: Load | undefined;
  try {
    const prepared = await ceiling.prepare(3, [[0, 1, 2]]);
    lost = await openLoad(prepared, ceiling.pid, 1);
    const during = lost.phase([], timing);
    // The server goes away within the phase: every socket closes under it.
    await Bun.sleep(timing.warmupMs / 2);
    await ceiling.stop();
    stopped = true;
    const first = await during;
    expect(first.closed).toBe(3);
    expect(Object.values(first.closeCodes).reduce((n, c) => n + c, 0)).toBe(3);
    const next = await lost.phase([], timing);
    expect(next.closed).toBe(0);
    expect(next.closeCodes).toEqual({});
  } finally {
    await lost?.close();
    if (!stopped) await ceiling.stop();
  }
}, 20_000);

it("speaks Parley's records with a Parley target: its events are deliveries, its acks are counted", async () => {
  const parley = await startTarget("parley");
  let parleyLoad: Load | undefined;
  try {
    const prepared = await parley.prepare(3, [[0, 1, 2]]);
    expect(prepared.conns[0]?.protocols?.[0]).toBe("parley.msgpackr.1");
    parleyLoad = await openLoad(prepared, parley.pid, 1);
    const r = await parleyLoad.phase(
      [{ conn: 0, room: prepared.roomIds[0] as string, probe: 1, window: 8 }],
      timing,
    );
    // Two receivers per message; the sender's own copy of the event is not a delivery.
    expect(r.received).toBeGreaterThan(0);
    expect(r.acks).toBeGreaterThan(0);
    expect(r.errors).toBe(0);
  } finally {
    await parleyLoad?.close();
    await parley.stop();
  }
}, 30_000);
