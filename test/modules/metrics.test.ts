// GET /metrics: only for the bearer of METRICS_TOKEN, and what it counts moves with what the node does
// (REST calls by route pattern, sockets, frames, error frames, stored and duplicate messages, acks,
// rate-limit refusals), with no ids or tokens in it.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { METRICS_CONTENT_TYPE } from "../../src/lib/metrics.ts";
import { call, group, type Harness, harness, signup } from "../helpers.ts";
import {
  connect,
  userSocket as openUserSocket,
  type SocketUser,
  type TestSocket,
} from "../realtime/ws-client.ts";

const TOKEN = "scraper-token-0123456789";
let h: Harness;
let base: string;
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness({ METRICS_TOKEN: TOKEN, WS_RATE_BURST: "30", WS_RATE_PER_SECOND: "1" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

/** A JSON socket of `user`'s session, open (its hello read) and closed after the file. */
const userSocket = (user: SocketUser) => openUserSocket(base, user, "json", open);

async function scrape(): Promise<string> {
  const res = await h.app.handle(
    new Request("http://localhost/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }),
  );
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe(METRICS_CONTENT_TYPE);
  return res.text();
}

/** The value of one series (`name{labels}` exactly as rendered), 0 when it is not there yet. */
function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Polls the metrics until `check` holds (socket closes are counted when Bun reports them). */
async function eventually(check: (text: string) => boolean): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = await scrape();
    if (check(text)) return text;
    await Bun.sleep(10);
  }
  throw new Error("metrics never got there");
}

describe("GET /metrics", () => {
  it("is not there without METRICS_TOKEN (404), and needs the token when set (401 otherwise)", async () => {
    const off = await harness();
    try {
      const res = await call(off.app, "GET", "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    } finally {
      await off.close();
    }
    const refused: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: `Basic ${TOKEN}` },
    ];
    for (const headers of refused) {
      const res = await call(h.app, "GET", "/metrics", { headers });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("unauthorized");
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
    expect(await scrape()).toContain("# TYPE parley_http_requests_total counter");
  });

  it("counts REST calls by method, route pattern and status, and their durations", async () => {
    const user = await signup(h.app);
    await call(h.app, "GET", `/api/users/${user.id}`, { token: user.token });
    await call(h.app, "GET", "/api/users/nobody-here-000000000", { token: user.token });
    await call(h.app, "GET", "/api/users?q=a", { token: user.token });
    // Counted once the answer is out (onAfterResponse), a moment after the caller has it.
    const text = await eventually(
      (t) =>
        value(t, 'parley_http_request_duration_seconds_count{method="GET",route="/api/users/:id"}') === 2,
    );
    expect(
      value(text, 'parley_http_requests_total{method="POST",route="/api/auth/signup",status="201"}'),
    ).toBe(1);
    expect(value(text, 'parley_http_requests_total{method="GET",route="/api/users/:id",status="200"}')).toBe(
      1,
    );
    expect(value(text, 'parley_http_requests_total{method="GET",route="/api/users/:id",status="404"}')).toBe(
      1,
    );
    expect(
      value(text, 'parley_http_request_duration_seconds_count{method="GET",route="/api/users/:id"}'),
    ).toBe(2);
    // A route at the root of its group is named as the README writes it, without a trailing slash.
    expect(value(text, 'parley_http_requests_total{method="GET",route="/api/users",status="200"}')).toBe(1);
    expect(text).not.toContain('route="/api/users/"');
    expect(text).not.toContain(user.id);
    expect(text).not.toContain(user.token);
    // A method a client made up is counted as "other", not as a series of its own (over a real socket:
    // Request objects only carry the standard methods).
    const reply = new Promise<string>((resolve) => {
      void Bun.connect({
        hostname: "127.0.0.1",
        port: h.app.server?.port as number,
        socket: {
          open: (sock) =>
            void sock.write("PROPFIND /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
          data: (_sock, data) => resolve(String(data)),
        },
      });
    });
    expect(await reply).toStartWith("HTTP/1.1 404");
    const other = await eventually((t) => t.includes('method="other",route="unmatched",status="404"'));
    expect(other).not.toContain("PROPFIND");
  });

  it("counts sockets, frames, error frames, stored and duplicate messages, acks and closes", async () => {
    const before = await scrape();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const conversation = await group(h.app, alice, [bob]);
    const s = await connect(`${base}/ws/${alice.id}/${alice.session_id}`, [
      "parley.msgpack",
      `bearer.${alice.token}`,
    ]);
    open.push(s);
    await s.next((f) => f.type === "hello");
    const records = await connect(`${base}/ws/${bob.id}/${bob.session_id}`, [
      "parley.msgpackr.1",
      `bearer.${bob.token}`,
    ]);
    open.push(records);
    await records.next((f) => f.type === "hello");
    let text = await scrape();
    expect(value(text, 'parley_ws_connections{encoding="msgpack"}')).toBe(1);
    expect(value(text, 'parley_ws_connections{encoding="msgpackr"}')).toBe(1);
    records.sendRaw(new Uint8Array([0xc1]));
    await records.next((f) => f.type === "error" && f.code === "bad_frame");
    records.ws.close();
    await records.closed;
    expect(value(text, 'parley_ws_connections_opened_total{kind="user"}')).toBe(
      value(before, 'parley_ws_connections_opened_total{kind="user"}') + 2,
    );

    const message = { type: "message", conversation_id: conversation, client_msg_id: "m1", content: "hi" };
    s.send({ ...message, ref: 1 });
    await s.next((f) => f.type === "ack" && f.ref === 1);
    s.send({ ...message, ref: 2 });
    await s.next((f) => f.type === "ack" && f.ref === 2);
    s.sendRaw(new Uint8Array([0xc1]));
    await s.next((f) => f.type === "error" && f.code === "bad_frame");
    s.send({ type: "no_such_frame", ref: 3 });
    await s.next((f) => f.type === "error" && f.ref === 3);

    text = await scrape();
    const delta = (series: string) => value(text, series) - value(before, series);
    expect(delta("parley_messages_stored_total")).toBe(1);
    expect(delta("parley_messages_duplicate_total")).toBe(1);
    expect(delta("parley_ws_message_ack_seconds_count")).toBe(2);
    expect(delta("parley_store_append_seconds_count")).toBe(2);
    expect(delta('parley_ws_frames_received_total{type="message"}')).toBe(2);
    expect(delta('parley_ws_frames_received_total{type="invalid"}')).toBe(3);
    expect(delta('parley_ws_error_frames_total{code="bad_frame"}')).toBe(2);
    expect(delta('parley_ws_error_frames_total{code="unknown_type"}')).toBe(1);
    expect(text).not.toContain(conversation);

    // A close code the client picked is "other" unless it is a standard one or one of the server's.
    s.ws.close(4321, "done");
    text = await eventually((t) => value(t, 'parley_ws_connections{encoding="msgpack"}') === 0);
    expect(value(text, 'parley_ws_connections_closed_total{code="other"}')).toBe(
      value(before, 'parley_ws_connections_closed_total{code="other"}') + 1,
    );
    expect(text).not.toContain('code="4321"');
  });

  it("counts a socket's upgrade under status 101, not 200, and a refused one under its error", async () => {
    const user = await signup(h.app);
    const route = (status: number) =>
      `parley_http_requests_total{method="GET",route="/ws/:user_id/:session_id",status="${status}"}`;
    const publicRoute = (status: number) =>
      `parley_http_requests_total{method="GET",route="/ws/public/:channel",status="${status}"}`;
    const before = await scrape();
    const s = await userSocket(user);
    const p = await connect(`${base}/ws/public/lobby`, ["parley.json"]);
    open.push(p);
    await expect(
      connect(`${base}/ws/${user.id}/${user.session_id}`, ["parley.json", "bearer.not-a-token"]),
    ).rejects.toThrow();
    const text = await eventually(
      (t) => value(t, route(101)) === value(before, route(101)) + 1 && value(t, route(401)) > 0,
    );
    expect(value(text, publicRoute(101))).toBe(value(before, publicRoute(101)) + 1);
    expect(value(text, route(200))).toBe(0);
    expect(value(text, publicRoute(200))).toBe(0);
    s.close();
    p.close();
  });

  it("counts a socket closed for a frame over WS_MAX_PAYLOAD under 1009, the code its client got", async () => {
    const user = await signup(h.app);
    const s = await userSocket(user);
    const before = await scrape();
    s.sendRaw(new Uint8Array(h.deps.config.WS_MAX_PAYLOAD + 1).fill(0x20));
    expect((await s.closed).code).toBe(1009);
    const closed = (t: string, code: string) =>
      value(t, `parley_ws_connections_closed_total{code="${code}"}`);
    const text = await eventually((t) => closed(t, "1009") === closed(before, "1009") + 1);
    expect(closed(text, "1006")).toBe(closed(before, "1006"));
  });

  it("counts a frame refused by the socket's frame rate as received, under type rate_limited", async () => {
    const user = await signup(h.app);
    const s = await userSocket(user);
    const before = await scrape();
    // WS_RATE_BURST is 30 (refilled at 1 a second): of 33 pings sent at once, the last few are refused.
    for (let i = 0; i < 33; i++) s.send({ type: "ping", ref: i });
    for (let i = 0; i < 33; i++) await s.next((f) => f.ref === i);
    const answered = s.frames.filter((f) => typeof f.ref === "number" && f.ref < 33);
    const refused = answered.filter((f) => f.type === "error" && f.code === "rate_limited").length;
    expect(refused).toBeGreaterThanOrEqual(1);
    const text = await scrape();
    const delta = (series: string) => value(text, series) - value(before, series);
    expect(delta('parley_ws_frames_received_total{type="rate_limited"}')).toBe(refused);
    expect(delta('parley_ws_frames_received_total{type="ping"}')).toBe(33 - refused);
    expect(delta('parley_rate_limited_total{limiter="ws_frames"}')).toBe(refused);
    s.close();
  });

  it("counts refusals by limiter: a socket's frame rate and a REST limiter", async () => {
    const user = await signup(h.app);
    const s = await userSocket(user);
    const before = await scrape();
    // WS_RATE_BURST is 30: the 31st ping in a burst is refused.
    for (let i = 0; i < 31; i++) s.send({ type: "ping", ref: i });
    await s.next((f) => f.type === "error" && f.code === "rate_limited");
    // A REST limiter, spent until it refuses (AUTH_RATE_LIMIT_PER_MINUTE and its burst).
    let limited: unknown;
    for (let i = 0; i < 100_000 && limited === undefined; i++) {
      await h.deps.limiters.check("signin", "ip:203.0.113.9").catch((err: unknown) => {
        limited = err;
      });
    }
    expect((limited as { code?: string }).code).toBe("rate_limited");
    const text = await scrape();
    expect(value(text, 'parley_rate_limited_total{limiter="ws_frames"}')).toBeGreaterThan(
      value(before, 'parley_rate_limited_total{limiter="ws_frames"}'),
    );
    expect(value(text, 'parley_rate_limited_total{limiter="signin"}')).toBe(1);
    s.close();
  });

  it("reports the process: version, start time, memory, CPU and event loop lag", async () => {
    await Bun.sleep(600);
    const text = await scrape();
    expect(text).toMatch(/^parley_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m);
    expect(value(text, "parley_process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
    expect(value(text, "parley_process_heap_used_bytes")).toBeGreaterThan(0);
    expect(value(text, "parley_process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(value(text, "parley_process_start_time_seconds")).toBeLessThanOrEqual(Date.now() / 1000);
    expect(value(text, "parley_event_loop_lag_seconds_count")).toBeGreaterThanOrEqual(1);
  });
});
