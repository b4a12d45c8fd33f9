import { describe, expect, it } from "bun:test";
import { Registry } from "../../src/lib/metrics.ts";

describe("metrics registry (Prometheus text format)", () => {
  it("renders counters per label set, with HELP and TYPE, escaping label values", () => {
    const r = new Registry();
    const c = r.counter("x_requests_total", "Requests\nanswered", ["route", "status"]);
    c.inc(["/a/:id", "200"]);
    c.inc(["/a/:id", "200"], 2);
    c.inc(['say "hi"\\\n', "500"]);
    expect(c.get(["/a/:id", "200"])).toBe(3);
    expect(c.get(["/nowhere", "200"])).toBe(0);
    expect(r.render()).toBe(
      [
        "# HELP x_requests_total Requests\\nanswered",
        "# TYPE x_requests_total counter",
        'x_requests_total{route="/a/:id",status="200"} 3',
        'x_requests_total{route="say \\"hi\\"\\\\\\n",status="500"} 1',
        "",
      ].join("\n"),
    );
  });

  it("renders histograms with cumulative buckets, +Inf, sum and count", () => {
    const r = new Registry();
    const h = r.histogram("x_seconds", "Latency", ["op"], [0.1, 1]);
    for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v, ["read"]);
    expect(h.count(["read"])).toBe(4);
    expect(r.render()).toBe(
      [
        "# HELP x_seconds Latency",
        "# TYPE x_seconds histogram",
        'x_seconds_bucket{op="read",le="0.1"} 2',
        'x_seconds_bucket{op="read",le="1"} 3',
        'x_seconds_bucket{op="read",le="+Inf"} 4',
        'x_seconds_sum{op="read"} 3.65',
        'x_seconds_count{op="read"} 4',
        "",
      ].join("\n"),
    );
  });

  it("reads gauges at each render", () => {
    const r = new Registry();
    let open = 1;
    r.gauge("x_open", "Open things", ["kind"], () => [[["a"], open]]);
    r.gauge("x_cpu_seconds_total", "CPU", [], () => [[[], 1.5]], "counter");
    expect(r.render()).toContain('x_open{kind="a"} 1\n');
    open = 7;
    expect(r.render()).toContain('x_open{kind="a"} 7\n');
    expect(r.render()).toContain("# TYPE x_cpu_seconds_total counter\nx_cpu_seconds_total 1.5\n");
  });

  it("refuses bad names, a reserved or bad label, a name registered twice and unordered buckets", () => {
    const r = new Registry();
    expect(() => r.counter("bad-name", "x")).toThrow("not a valid name");
    expect(() => r.counter("ok_total", "x", ["le"])).toThrow("bad label name le");
    expect(() => r.counter("ok2_total", "x", ["0x"])).toThrow("bad label name");
    r.counter("dup_total", "x");
    expect(() => r.counter("dup_total", "x")).toThrow("registered twice");
    expect(() => r.histogram("h_seconds", "x", [], [1, 0.5])).toThrow("buckets must ascend");
  });
});
