import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup, waitFor } from "../helpers.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness({ CORS_ORIGINS: "https://app.example.com", MAX_JSON_BODY_BYTES: "2048" });
});
afterAll(() => h.close());

describe("cross-cutting HTTP behaviour", () => {
  it("GET /health answers 200 {status: ok}", async () => {
    const res = await call(h.app, "GET", "/health");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("GET /ready answers 200 while the store answers", async () => {
    const res = await call(h.app, "GET", "/ready");
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("ready");
  });

  it("sets security headers on answers and on errors", async () => {
    for (const path of ["/health", "/api/auth/me", "/no/such/route"]) {
      const res = await call(h.app, "GET", path);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    }
  });

  it("answers an unknown route with 404 not_found in the error shape", async () => {
    const res = await call(h.app, "GET", "/api/nothing-here");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });

  it("allows CORS from CORS_ORIGINS only", async () => {
    const allowed = await call(h.app, "OPTIONS", "/api/auth/signin", {
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST" },
    });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const denied = await call(h.app, "OPTIONS", "/api/auth/signin", {
      headers: { origin: "https://evil.example.com", "access-control-request-method": "POST" },
    });
    expect(denied.headers.get("access-control-allow-origin")).not.toBe("https://evil.example.com");
  });

  it("refuses a JSON body over MAX_JSON_BODY_BYTES with 413 payload_too_large", async () => {
    const res = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: "a@b.co", password: "x".repeat(3000) },
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
  });

  it("refuses a body without a declared length once it passes MAX_JSON_BODY_BYTES, without reading the rest", async () => {
    let pulled = 0;
    const chunk = new Uint8Array(1024).fill(32);
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= 1024 * 1024) return controller.close();
        pulled += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await h.app.handle(
      new Request("http://localhost/api/auth/signin", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        duplex: "half",
      } as RequestInit),
    );
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    expect(pulled).toBeLessThan(64 * 1024);
  });

  it("refuses a JSON body that is not an object with 422, where Elysia would read it as {}", async () => {
    const user = await signup(h.app);
    for (const raw of ['"hello"', "42", "true", "[1,2,3]", "null"]) {
      for (const [method, path] of [
        ["PUT", `/api/users/${user.id}`],
        ["POST", "/api/auth/signin"],
      ] as const) {
        const res = await call(h.app, method, path, { raw, token: user.token });
        expect({
          raw,
          path,
          status: res.status,
          code: res.body.error?.code,
          field: res.body.error?.field,
        }).toEqual({ raw, path, status: 422, code: "validation_failed", field: "body" });
      }
    }
    expect((await call(h.app, "PUT", `/api/users/${user.id}`, { raw: "{}", token: user.token })).status).toBe(
      200,
    );
  });

  it("names the query parameter whose value is out of range, or the query when it cannot tell which", async () => {
    const user = await signup(h.app);
    for (const [query, field] of [
      ["limit=101", "limit"],
      ["limit=0", "limit"],
      ["limit=abc", "limit"],
      ["limit=7.5&cursor=x", "limit"],
      // Values that convert to a number spelled otherwise: -0 is 0, a blank is 0, 1e3 is 1000.
      ["limit=-0", "limit"],
      ["limit=%20", "limit"],
      ["limit=1e3&cursor=x", "limit"],
      // ...and in range once converted: a whole number is written in digits alone.
      ["limit=0x10", "limit"],
      ["limit=1e1", "limit"],
      ["limit=+5", "limit"],
      ["limit=%205", "limit"],
    ]) {
      const res = await call(h.app, "GET", `/api/conversations?${query}`, { token: user.token });
      expect({ query, status: res.status, field: res.body.error?.field }).toEqual({
        query,
        status: 422,
        field,
      });
      expect(res.body.error.message).toStartWith(`${field}: `);
    }
    const res = await call(h.app, "GET", "/api/conversations?limit=101&cursor=101", { token: user.token });
    expect(res.body.error?.field).toBe("query");
    // The messages routes' before and after too; digits are taken, leading zeros and all.
    const id = await group(h.app, user, []);
    for (const query of ["after=0x1", "before=1e1", "after=1.0"]) {
      const bad = await call(h.app, "GET", `/api/conversations/${id}/messages?${query}`, {
        token: user.token,
      });
      expect([query, bad.status, bad.body.error?.field]).toEqual([query, 422, query.split("=")[0]]);
    }
    const events = await call(h.app, "GET", `/api/conversations/${id}/events?after=0x1`, {
      token: user.token,
    });
    expect([events.status, events.body.error?.field]).toEqual([422, "after"]);
    for (const query of ["after=00", "limit=050"])
      expect(
        (await call(h.app, "GET", `/api/conversations/${id}/messages?${query}`, { token: user.token }))
          .status,
      ).toBe(200);
  });

  it("refuses a field the request does not take with 422 naming it, where validation would drop it", async () => {
    const user = await signup(h.app);
    for (const [method, path, body, field] of [
      ["PUT", `/api/users/${user.id}`, { display_name: "New", email: "evil@example.com" }, "email"],
      ["PUT", `/api/users/${user.id}`, { role: "admin" }, "role"],
      [
        "POST",
        "/api/conversations",
        { conversation_type: "group", participant_ids: [], owner: "x" },
        "owner",
      ],
    ] as const) {
      const res = await call(h.app, method, path, { token: user.token, body });
      expect({ path, status: res.status, code: res.body.error?.code, field: res.body.error?.field }).toEqual({
        path,
        status: 422,
        code: "validation_failed",
        field,
      });
    }
    const me = await call(h.app, "GET", "/api/auth/me", { token: user.token });
    expect(me.body.display_name).not.toBe("New");
    // Without a token the guard answers first, and says nothing of the route's fields.
    const anonymous = await call(h.app, "PUT", `/api/users/${user.id}`, { body: { role: "admin" } });
    expect(anonymous.status).toBe(401);
  });

  it("refuses multipart bodies with 415 (there are no uploads) before reading them", async () => {
    const form = new FormData();
    form.set("email", "a@b.co");
    form.set("password", "correct horse battery staple");
    // DELETE too: a route without a body schema would still have parsed one.
    for (const [method, path] of [
      ["POST", "/api/auth/signin"],
      ["DELETE", "/api/auth/sessions/some-session"],
    ]) {
      const res = await h.app.handle(new Request(`http://localhost${path}`, { method, body: form }));
      expect({ method, status: res.status }).toEqual({ method, status: 415 });
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
    }
  });

  it("serves the OpenAPI document covering every route, and its UI", async () => {
    const doc = await call(h.app, "GET", "/docs/json");
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    const paths = Object.keys(doc.body.paths);
    for (const path of [
      "/api/auth/signup",
      "/api/auth/signin",
      "/api/auth/refresh",
      "/api/auth/magic-link",
      "/api/auth/magic-link/verify",
      "/api/auth/change-password",
      "/api/auth/signout",
      "/api/auth/me",
      "/api/auth/sessions",
      "/api/auth/sessions/{id}",
      "/api/users",
      "/api/users/{id}",
      "/api/conversations",
      "/api/announcements",
      "/api/conversations/{id}",
      "/api/conversations/{id}/participants",
      "/api/conversations/{id}/participants/{user_id}",
      "/api/conversations/{id}/messages",
      "/api/conversations/{id}/messages/search",
      "/api/conversations/{id}/events",
      "/api/conversations/{id}/read",
      "/api/messages/{id}",
      "/api/messages/{id}/reactions",
      "/api/messages/{id}/reactions/{emoji}",
      "/api/messages/{id}/receipts",
      "/health",
      "/ready",
    ]) {
      expect(paths).toContain(path);
    }
    // Named as the README's API table names them: no route ends in a slash (a client generated from the
    // document calls what the README says). A trailing slash in a request still reaches the route.
    expect(paths.filter((path) => path.endsWith("/"))).toEqual([]);
    expect((await call(h.app, "GET", "/api/users/?q=a")).body.error.code).toBe("unauthorized");
    // Every operation that takes a body documents it as JSON with its schema.
    const bodies = Object.entries(doc.body.paths as Record<string, Record<string, any>>).flatMap(
      ([path, ops]) =>
        Object.entries(ops)
          .filter(([, op]) => op.requestBody)
          .map(([method, op]) => ({
            op: `${method} ${path}`,
            schema: op.requestBody.content["application/json"]?.schema,
          })),
    );
    expect(bodies.length).toBeGreaterThanOrEqual(15);
    for (const { op, schema } of bodies) expect({ op, type: schema?.type }).toEqual({ op, type: "object" });
    expect(bodies.find((b) => b.op === "post /api/auth/signup")?.schema.required).toContain("password");
    const ui = await h.app.handle(new Request("http://localhost/docs"));
    expect(ui.status).toBe(200);
    expect(ui.headers.get("content-type")).toContain("text/html");
  });

  it("logs one JSON line per request with a request id, and never a password or token", async () => {
    const user = await signup(h.app);
    await call(h.app, "GET", `/api/auth/me?access_token=${user.token}`, {
      token: user.token,
      headers: { "x-request-id": "req-abc-123" },
    });
    await call(h.app, "POST", "/api/auth/refresh", { body: { refresh_token: user.refresh_token } });
    await Bun.sleep(0);
    const all = h.logs.join("");
    expect(all).toContain('"req_id":"req-abc-123"');
    for (const secret of [user.password, user.token, user.refresh_token])
      expect(all.includes(secret)).toBe(false);
    const line = h.logs.map((l) => JSON.parse(l)).find((l) => l.req_id === "req-abc-123");
    const echoed = await call(h.app, "GET", "/health", { headers: { "x-request-id": "req-xyz" } });
    expect(echoed.headers.get("x-request-id")).toBe("req-xyz");
    expect(line).toMatchObject({ method: "GET", path: "/api/auth/me", status: 200, msg: "request" });
  });

  it("logs and counts every answer with the status it had: unknown routes and early refusals too", async () => {
    const sent = [
      { id: "st-404", path: "/no/such/route", init: {}, status: 404 },
      {
        id: "st-415",
        path: "/api/auth/signin",
        init: { method: "POST", headers: { "content-type": "text/plain" }, body: "x" },
        status: 415,
      },
      {
        id: "st-413",
        path: "/api/auth/signin",
        init: { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(4096) },
        status: 413,
      },
    ];
    for (const r of sent) {
      const init = r.init as RequestInit & { headers?: Record<string, string> };
      const res = await h.app.handle(
        new Request(`http://localhost${r.path}`, {
          ...init,
          headers: { ...init.headers, "x-request-id": r.id },
        }),
      );
      expect(res.status).toBe(r.status);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-request-id")).toBe(r.id);
    }
    // Logged and counted once each answer is out, a moment after the caller has it.
    const lines = await waitFor(() => {
      const all = h.logs.map((l) => JSON.parse(l));
      return sent.every((r) => all.some((l) => l.req_id === r.id)) ? all : undefined;
    });
    for (const r of sent) {
      expect(lines.find((l) => l.req_id === r.id)).toMatchObject({ path: r.path, status: r.status });
    }
    const { requests } = h.deps.metrics.http;
    expect(requests.get(["GET", "unmatched", "404"])).toBeGreaterThanOrEqual(1);
    expect(
      requests.get(["POST", "unmatched", "415"]) + requests.get(["POST", "/api/auth/signin", "415"]),
    ).toBeGreaterThanOrEqual(1);
    expect(requests.get(["GET", "unmatched", "200"])).toBe(0);
  });
});

describe("readiness", () => {
  it("answers 503 on /ready once the store stops answering, while /health stays 200", async () => {
    const broken = await harness();
    try {
      await broken.deps.store.close();
      const ready = await call(broken.app, "GET", "/ready");
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "unavailable", failing: ["store"] });
      expect((await call(broken.app, "GET", "/health")).status).toBe(200);
    } finally {
      await broken.close();
    }
  });

  it("answers 503 on /ready, naming the shutdown, from the moment the node starts to close", async () => {
    const closing = await harness();
    try {
      expect((await call(closing.app, "GET", "/ready")).status).toBe(200);
      const closed = closing.deps.gateway.close();
      const ready = await call(closing.app, "GET", "/ready");
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "unavailable", failing: ["shutdown"] });
      expect((await call(closing.app, "GET", "/health")).status).toBe(200);
      await closed;
    } finally {
      await closing.close();
    }
  });

  it("answers 503 on /ready, naming the broker, when its Redis cannot be reached", async () => {
    const cut = await harness({ REDIS_URL: "redis://127.0.0.1:1" });
    try {
      const ready = await call(cut.app, "GET", "/ready");
      expect(ready.status).toBe(503);
      expect(ready.body).toEqual({
        status: "unavailable",
        store: "sqlite",
        broker: "redis",
        failing: ["broker"],
      });
    } finally {
      await cut.close();
    }
  });

  it("names the broker it is ready with", async () => {
    const joined = await harness({ REDIS_URL: process.env.REDIS_URL || "redis://127.0.0.1:6379" });
    try {
      const ready = await call(joined.app, "GET", "/ready");
      expect(ready.body).toEqual({ status: "ready", store: "sqlite", broker: "redis" });
    } finally {
      await joined.close();
    }
  });
});
