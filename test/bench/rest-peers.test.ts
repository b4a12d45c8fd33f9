// The rest scenario's peers (bench/peers/rest-bun.ts, rest-express.mjs) keep the contract the scenario and
// its comparison rely on: Parley's routes, a message with exactly Parley's MessageView fields, pages in
// Parley's order, a sign-in that checks the password, and clear errors for bad input.

import { afterEach, describe, expect, it } from "bun:test";
import { BENCH_PASSWORD } from "../../bench/lib/seed.ts";
import { restTargets } from "../../bench/lib/targets.ts";
import { call } from "../../bench/loadgen/rest-ops.ts";
import { measure, type RestTarget, startRestTarget } from "../../bench/scenarios/rest.ts";
import { MessageView } from "../../src/modules/messages/model.ts";

/** A cheap hash: the contract, not argon2id's cost, is under test. */
const COST = { memoryKiB: 1024, time: 1 };
let target: RestTarget | undefined;
afterEach(async () => {
  await target?.stop();
  target = undefined;
});

const raw = (url: string, method: string, path: string, body: string, token?: string) =>
  fetch(url + path, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });

describe.each(["bare-bun", "node-express"] as const)("the %s REST peer", (name) => {
  it("signs in, stores and pages messages shaped as Parley's, and answers bad input with 400, 401 and 404", async () => {
    target = await startRestTarget(name, `t${Date.now()}`, COST);
    const { url, tokens, usernames } = target;
    expect(tokens).toHaveLength(usernames.length);
    const path = `/api/conversations/${target.conversationId}/messages`;
    const token = tokens[0];

    const sent = [];
    for (let i = 1; i <= 3; i++)
      sent.push(await call(url, "POST", path, { content: `m${i}`, client_msg_id: `k${i}` }, token));
    expect(Object.keys(sent[0] as object).sort()).toEqual(Object.keys(MessageView.properties).sort());
    expect(sent.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(sent[2]).toMatchObject({
      content: "m3",
      client_msg_id: "k3",
      conversation_id: target.conversationId,
    });

    const page = await call(url, "GET", `${path}?before=3&limit=1`, undefined, token);
    expect(page).toEqual({ items: [sent[1]], has_more: true });
    const all = await call(url, "GET", path, undefined, token);
    expect(all).toEqual({ items: sent, has_more: false });

    const wrong = raw(
      url,
      "POST",
      "/api/auth/signin",
      JSON.stringify({ username: usernames[0], password: "no" }),
    );
    expect((await wrong).status).toBe(401);
    const stranger = JSON.stringify({ username: "nobody", password: BENCH_PASSWORD });
    expect((await raw(url, "POST", "/api/auth/signin", stranger)).status).toBe(401);
    const bad = await raw(url, "POST", path, "{not json", token);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "bad_request" });
    expect(
      (
        await fetch(`${url}/api/conversations/elsewhere/messages`, {
          headers: { authorization: `Bearer ${token}` },
        })
      ).status,
    ).toBe(404);
    // Nothing was lost to the bad requests.
    expect((await call(url, "GET", path, undefined, token)).items).toHaveLength(3);
  }, 30_000);
});

describe("the Express peer", () => {
  it("needs a valid token, takes a resent client_msg_id once and refuses a body too large with 413", async () => {
    target = await startRestTarget("node-express", `t${Date.now()}`, COST);
    const path = `/api/conversations/${target.conversationId}/messages`;
    const body = JSON.stringify({ content: "hi", client_msg_id: "same" });
    expect((await raw(target.url, "POST", path, body)).status).toBe(401);
    expect((await raw(target.url, "POST", path, body, `${target.tokens[0]}x`)).status).toBe(401);
    const first = await raw(target.url, "POST", path, body, target.tokens[0]);
    const again = await raw(target.url, "POST", path, body, target.tokens[1]);
    expect([first.status, again.status]).toEqual([201, 200]);
    expect((await again.json()).id).toBe((await first.json()).id);
    // A body over express.json's 64 KB: 413 with its own code, nothing stored.
    const big = JSON.stringify({ content: "x".repeat(70_000), client_msg_id: "big" });
    const tooLarge = await raw(target.url, "POST", path, big, target.tokens[0]);
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toMatchObject({ code: "payload_too_large" });
    expect((await call(target.url, "GET", path, undefined, target.tokens[0])).items).toHaveLength(1);
  }, 30_000);
});

describe("the rest scenario's targets", () => {
  it("are Parley, the ceiling and Express, or those BENCH_TARGETS names, which may name other scenarios' too", () => {
    expect(restTargets(undefined)).toEqual(["parley", "bare-bun", "node-express"]);
    expect(restTargets("node-express,parley,node-ws")).toEqual(["parley", "node-express"]);
    expect(() => restTargets("parley,fastify")).toThrow("unknown target(s) fastify");
  });
});

describe("the rest scenario's generators", () => {
  it("split the loops over two processes that measure one window, and count refused requests as errors", async () => {
    target = await startRestTarget("node-express", `t${Date.now()}`, COST);
    const plan = { ...target, messages: 0, page: 50 };
    const sent = await measure(target.pid, plan, "send", 0.5);
    expect(sent.ok).toBeGreaterThan(10);
    expect(sent.errors).toBe(0);
    expect(sent.histogram.summary().count).toBe(sent.ok);
    expect(sent.generatorCpuPcts).toHaveLength(2);
    const pages = await measure(target.pid, { ...plan, messages: sent.ok }, "history page", 0.3);
    expect(pages.ok).toBeGreaterThan(10);
    expect(pages.errors).toBe(0);
    // Tokens the server does not know: every send refused, none counted as done.
    const refused = await measure(
      target.pid,
      { ...plan, tokens: plan.tokens.map((t) => `${t}x`) },
      "send",
      0.3,
    );
    expect(refused.ok).toBe(0);
    expect(refused.errors).toBeGreaterThan(0);
    expect(refused.firstError).toContain("send: POST");
    expect(refused.firstError).toContain("401");
  }, 30_000);
});
