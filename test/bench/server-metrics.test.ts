// The bench's reading of Parley's own ack times over a measured window (bench/lib/server-metrics.ts): the
// arithmetic on Prometheus buckets, and the probe against a real server.

import { afterAll, expect, it } from "bun:test";
import { Packr } from "msgpackr";
import { ackNote, ackProbe, histogramBuckets, windowQuantiles } from "../../bench/lib/server-metrics.ts";
import { startTarget, type Target } from "../../bench/lib/targets.ts";
import { recordOptions, SUBPROTOCOL_MSGPACKR } from "../../src/realtime/frames.ts";

const scrape = (counts: number[], sum = 1) =>
  [
    "# TYPE parley_ws_message_ack_seconds histogram",
    ...["0.0005", "0.001", "0.0025", "0.005", "+Inf"].map(
      (le, i) => `parley_ws_message_ack_seconds_bucket{le="${le}"} ${counts[i]}`,
    ),
    `parley_ws_message_ack_seconds_sum ${sum}`,
    `parley_ws_message_ack_seconds_count ${counts.at(-1)}`,
    'parley_other_seconds_bucket{le="0.001"} 999',
  ].join("\n");

it("answers a window's p50 and p99 as the bucket bounds they are under", () => {
  const before = histogramBuckets(scrape([5, 10, 10, 10, 10]), "parley_ws_message_ack_seconds");
  expect([...before.entries()]).toEqual([
    [0.5, 5],
    [1, 10],
    [2.5, 10],
    [5, 10],
    [Number.POSITIVE_INFINITY, 10],
  ]);
  // In the window: 100 acks, 40 under 0.5 ms, 60 under 1 ms, 98 under 2.5 ms, 99 under 5 ms, 1 over.
  const after = histogramBuckets(scrape([45, 70, 108, 109, 110]), "parley_ws_message_ack_seconds");
  const q = windowQuantiles(before, after);
  expect(q).toEqual({ count: 100, p50_le_ms: 1, p99_le_ms: 5 });
  expect(ackNote(q)).toContain("100 acks): p50 ≤ 1 ms, p99 ≤ 5 ms");
  const tail = windowQuantiles(
    before,
    histogramBuckets(scrape([45, 70, 108, 108, 110]), "parley_ws_message_ack_seconds"),
  );
  expect(tail.p99_le_ms).toBe(Number.POSITIVE_INFINITY);
  expect(ackNote(tail)).toContain("p99 over the last bucket");
  expect(windowQuantiles(before, before)).toMatchObject({ count: 0, p50_le_ms: Number.NaN });
});

let parley: Target | undefined;
afterAll(() => parley?.stop());

it("reads a Parley target's acks over a window from its /metrics", async () => {
  parley = await startTarget("parley");
  const scrapeMetrics = parley.scrapeMetrics;
  if (!scrapeMetrics) throw new Error("a Parley target can be scraped");
  const prepared = await parley.prepare(2, [[0, 1]]);
  const conn = prepared.conns[0];
  if (!conn) throw new Error("no connection");
  const ws = new WebSocket(conn.url, conn.protocols ?? []);
  ws.binaryType = "arraybuffer";
  const frames: { type: string }[] = [];
  // The bench's sockets speak Parley's records, as its SDK does.
  const records = new Packr(recordOptions());
  ws.addEventListener("message", (e) => frames.push(records.unpack(new Uint8Array(e.data as ArrayBuffer))));
  await new Promise((resolve) => ws.addEventListener("open", resolve));
  expect(ws.protocol).toBe(SUBPROTOCOL_MSGPACKR);
  const probe = ackProbe(scrapeMetrics);
  await probe.start();
  for (let i = 0; i < 3; i++)
    ws.send(
      records.pack({
        type: "message",
        conversation_id: prepared.roomIds[0],
        client_msg_id: `m${i}`,
        content: "hi",
      }),
    );
  for (let waited = 0; frames.filter((f) => f.type === "ack").length < 3 && waited < 5000; waited += 20)
    await Bun.sleep(20);
  const q = await probe.end();
  ws.close();
  expect(q.count).toBe(3);
  expect(q.p99_le_ms).toBeGreaterThan(0);
}, 30_000);
