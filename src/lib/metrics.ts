// A small metrics registry rendered in Prometheus' text format (version 0.0.4): counters and histograms
// that the code updates as things happen, and gauges read when scraped. Updating is a map lookup and an
// addition, cheap enough for the live path; label sets stay small and fixed (routes, frame types, codes),
// never ids.

type Labels = readonly string[];
/** The label values of a metric without labels (a default that allocates nothing per call). */
const NONE: Labels = Object.freeze([]);

interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function formatValue(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

function labelText(names: Labels, values: Labels, extra?: [string, string]): string {
  const pairs = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

function header(out: string[], name: string, help: string, type: string) {
  out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
}

/**
 * Label values as one map key (joined by the unit separator, which our label values never hold); one
 * value is its own key, so the live path's counters (no label, or a frame type) allocate nothing here.
 */
const keyOf = (values: Labels): string =>
  values.length === 0 ? "" : values.length === 1 ? (values[0] as string) : values.join("\u001f");

export class Counter implements Metric {
  private series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    private help: string,
    private labelNames: Labels,
  ) {}

  inc(labels: Labels = NONE, by = 1) {
    const key = keyOf(labels);
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels: [...labels], value: by });
  }

  /** The current value of one series (0 when it was never counted). */
  get(labels: Labels = NONE): number {
    return this.series.get(keyOf(labels))?.value ?? 0;
  }

  render(out: string[]) {
    header(out, this.name, this.help, "counter");
    for (const s of this.series.values())
      out.push(`${this.name}${labelText(this.labelNames, s.labels)} ${formatValue(s.value)}`);
  }
}

export class Histogram implements Metric {
  private series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    private help: string,
    private labelNames: Labels,
    /** Upper bounds, ascending; +Inf is implied. */
    private buckets: readonly number[],
  ) {
    for (let i = 1; i < buckets.length; i++)
      if (!((buckets[i] as number) > (buckets[i - 1] as number)))
        throw new Error(`histogram ${name}: buckets must ascend`);
  }

  observe(value: number, labels: Labels = NONE) {
    const key = keyOf(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: [...labels], counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] as number)) {
        (s.counts[i] as number)++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  /** Observations of one series so far. */
  count(labels: Labels = NONE): number {
    return this.series.get(keyOf(labels))?.count ?? 0;
  }

  render(out: string[]) {
    header(out, this.name, this.help, "histogram");
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        out.push(
          `${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", formatValue(le)])} ${cumulative}`,
        );
      });
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", "+Inf"])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
  }
}

/** A value read when scraped: one series per label set the reader answers. */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    private help: string,
    private labelNames: Labels,
    private read: () => Iterable<readonly [Labels, number]>,
    private type: "gauge" | "counter" = "gauge",
  ) {}

  render(out: string[]) {
    header(out, this.name, this.help, this.type);
    for (const [labels, value] of this.read())
      out.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(value)}`);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class Registry {
  private metrics = new Map<string, Metric>();

  counter(name: string, help: string, labels: Labels = NONE): Counter {
    return this.add(new Counter(name, help, labels), labels);
  }

  histogram(name: string, help: string, labels: Labels, buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labels, buckets), labels);
  }

  /** A gauge (or, with type "counter", a total kept elsewhere) read at each scrape. */
  gauge(
    name: string,
    help: string,
    labels: Labels,
    read: () => Iterable<readonly [Labels, number]>,
    type: "gauge" | "counter" = "gauge",
  ): Gauge {
    return this.add(new Gauge(name, help, labels, read, type), labels);
  }

  /** Every metric in the text exposition format, in the order they were registered. */
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) m.render(out);
    return `${out.join("\n")}\n`;
  }

  private add<M extends Metric>(metric: M, labels: Labels): M {
    if (!NAME.test(metric.name)) throw new Error(`metric ${metric.name}: not a valid name`);
    for (const l of labels)
      if (!LABEL.test(l) || l === "le") throw new Error(`metric ${metric.name}: bad label name ${l}`);
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

/** Prometheus' content type for the text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
