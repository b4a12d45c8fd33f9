// Parley's own view of a measured window: its /metrics histogram of a message frame's arrival to its durable
// ack, read before and after the window, so that a row can say how much of the end-to-end latency the
// server itself took. Prometheus buckets are coarse: a quantile is answered as the bucket bound it is under.

/** Cumulative counts by upper bound (ms; +Inf as Infinity) of histogram `name` in Prometheus text. */
export function histogramBuckets(text: string, name: string): Map<number, number> {
  const buckets = new Map<number, number>();
  const pattern = new RegExp(`^${name}_bucket\\{(?:[^}]*,)?le="([^"]+)"[^}]*\\} (\\S+)$`);
  for (const line of text.split("\n")) {
    const m = pattern.exec(line);
    if (!m) continue;
    const le = m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]) * 1000;
    buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2]));
  }
  return buckets;
}

export interface WindowQuantiles {
  /** Observations in the window. */
  count: number;
  /** The bucket bound (ms) that each quantile is under; Infinity past the last bound, NaN with none. */
  p50_le_ms: number;
  p99_le_ms: number;
}

/** The window's quantiles from the histogram's cumulative buckets before and after it. */
export function windowQuantiles(before: Map<number, number>, after: Map<number, number>): WindowQuantiles {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const inWindow = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const count = inWindow.at(-1) ?? 0;
  const under = (q: number) => {
    if (count === 0) return Number.NaN;
    const i = inWindow.findIndex((n) => n >= q * count);
    return bounds[i] as number;
  };
  return { count, p50_le_ms: under(0.5), p99_le_ms: under(0.99) };
}

/** What a phase reads at its measured window's start and end (run.ts). */
export interface WindowProbe {
  start(): Promise<void>;
  end(): Promise<WindowQuantiles>;
}

/** The arrival-to-ack histogram of a Parley node, read through `scrape` (its /metrics text). */
export function ackProbe(scrape: () => Promise<string>): WindowProbe {
  const ACK = "parley_ws_message_ack_seconds";
  let before = new Map<number, number>();
  return {
    async start() {
      before = histogramBuckets(await scrape(), ACK);
    },
    async end() {
      return windowQuantiles(before, histogramBuckets(await scrape(), ACK));
    },
  };
}

/** A row's note on the server's own share of the latency. */
export function ackNote(q: WindowQuantiles): string {
  const ms = (v: number) => (v === Number.POSITIVE_INFINITY ? "over the last bucket" : `≤ ${v} ms`);
  return (
    `Parley's own time from a message's arrival to its durable ack, in the window (its /metrics histogram, ` +
    `${q.count} acks): p50 ${ms(q.p50_le_ms)}, p99 ${ms(q.p99_le_ms)}`
  );
}
