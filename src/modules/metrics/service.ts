// Parley's metrics, one set per node: what the HTTP layer, the gateway, the message service and the rate
// limiters count, and what is read at each scrape (sockets, process memory and CPU, event loop lag).

import { Registry } from "../../lib/metrics.ts";

/** Seconds: a REST call, a socket's message to its ack, a store append, the event loop's lag. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** How often the event loop's lag is sampled: a timer's lateness. */
const LAG_SAMPLE_MS = 500;

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(version: string) {
  const registry = new Registry();
  // The process's start, not this registry's (tests build several apps in one process).
  const startedAt = performance.timeOrigin / 1000;
  registry.gauge("parley_build_info", "The running version", ["version"], () => [[[version], 1]]);
  registry.gauge("parley_process_start_time_seconds", "When the process started (Unix time)", [], () => [
    [[], startedAt],
  ]);
  registry.gauge("parley_process_resident_memory_bytes", "Resident set size", [], () => [
    [[], process.memoryUsage.rss()],
  ]);
  registry.gauge("parley_process_heap_used_bytes", "JavaScript heap in use", [], () => [
    [[], process.memoryUsage().heapUsed],
  ]);
  registry.gauge(
    "parley_process_cpu_seconds_total",
    "CPU time spent by the process, user and system",
    [],
    () => {
      const { user, system } = process.cpuUsage();
      return [[[], (user + system) / 1e6]];
    },
    "counter",
  );

  const lag = registry.histogram(
    "parley_event_loop_lag_seconds",
    `How late a ${LAG_SAMPLE_MS} ms timer fired: time the event loop was busy`,
    [],
    LATENCY_BUCKETS,
  );
  let expected = performance.now() + LAG_SAMPLE_MS;
  const sampler = setInterval(() => {
    const now = performance.now();
    lag.observe(Math.max(0, now - expected) / 1000);
    expected = now + LAG_SAMPLE_MS;
  }, LAG_SAMPLE_MS);
  sampler.unref?.();

  return {
    registry,
    http: {
      requests: registry.counter("parley_http_requests_total", "HTTP requests answered", [
        "method",
        "route",
        "status",
      ]),
      seconds: registry.histogram(
        "parley_http_request_duration_seconds",
        "Time to answer an HTTP request",
        ["method", "route"],
        LATENCY_BUCKETS,
      ),
    },
    ws: {
      opened: registry.counter("parley_ws_connections_opened_total", "WebSockets opened", ["kind"]),
      closed: registry.counter("parley_ws_connections_closed_total", "WebSockets closed, by close code", [
        "code",
      ]),
      frames: registry.counter(
        "parley_ws_frames_received_total",
        'Frames received, by type ("invalid" for frames that failed decoding or validation, "rate_limited" for those refused by the frame rate)',
        ["type"],
      ),
      errors: registry.counter("parley_ws_error_frames_total", "Error frames sent, by code", ["code"]),
      resumePauses: registry.counter(
        "parley_ws_resume_pauses_total",
        "Times a resume waited for its socket to drain (a large catch-up, paced)",
        [],
      ),
      ackSeconds: registry.histogram(
        "parley_ws_message_ack_seconds",
        "From a message frame's arrival to its ack (durable)",
        [],
        LATENCY_BUCKETS,
      ),
    },
    messages: {
      stored: registry.counter("parley_messages_stored_total", "New messages appended to a conversation", []),
      duplicates: registry.counter(
        "parley_messages_duplicate_total",
        "Sends answered with a message already stored under the same client_msg_id",
        [],
      ),
      appendSeconds: registry.histogram(
        "parley_store_append_seconds",
        "A message append, from the call to its durable commit",
        [],
        LATENCY_BUCKETS,
      ),
    },
    rateLimited: registry.counter("parley_rate_limited_total", "Requests refused by a rate limiter", [
      "limiter",
    ]),
    broker: {
      published: registry.counter(
        "parley_broker_published_total",
        "Messages published to the other nodes (only with REDIS_URL)",
        [],
      ),
      received: registry.counter(
        "parley_broker_received_total",
        "Messages received from the other nodes (only with REDIS_URL)",
        [],
      ),
      dropped: registry.counter(
        "parley_broker_dropped_total",
        "Messages for the other nodes dropped because Redis could not be reached (only with REDIS_URL)",
        [],
      ),
    },
    close() {
      clearInterval(sampler);
    },
  };
}
