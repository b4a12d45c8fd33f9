// The shapes every bench scenario returns, so bench/index.ts can run, store and render any of them alike.

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** One measured configuration against one target (Parley, the ceiling or a peer). */
export interface ScenarioResult {
  scenario: string;
  target: string;
  settings: Record<string, unknown>;
  metrics: Record<string, number>;
  latency?: Percentiles;
  /** The busiest load-generator process's CPU over the measured wall time (100 = one core saturated). */
  generator_cpu_pct?: number;
  notes?: string[];
}

export type Scenario = (opts: { quick: boolean; log: (line: string) => void }) => Promise<ScenarioResult[]>;
