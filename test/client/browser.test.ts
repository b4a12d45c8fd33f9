// The SDK in a real browser: headless Chromium loads a page that bundles the SDK, signs up over REST
// (CORS), opens a msgpack WebSocket with the bearer subprotocol, sends a message and reports its ack; and
// two tabs sharing one session through localStorage and Web Locks refresh it together without ending it.
// Runs where Chromium is installed (.ci/run installs it); elsewhere it says loudly that it was skipped.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { call, type Harness, harness, signup } from "../helpers.ts";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) =>
  existsSync(p),
);
if (!CHROMIUM)
  console.warn("SDK browser test SKIPPED: no Chromium found (apt-get install -y chromium to run it).");

describe.skipIf(!CHROMIUM)("the SDK in headless Chromium", () => {
  let h: Harness;
  let page: Server<undefined>;
  let profile: string;
  let bundle: string;
  const reports: unknown[] = [];
  let reported = () => {};

  /** The first `n` results the pages posted, or an error result after `ms`. */
  async function results(n: number, ms = 30_000): Promise<unknown[]> {
    const deadline = Date.now() + ms;
    while (reports.length < n && Date.now() < deadline) {
      await Promise.race([new Promise<void>((r) => (reported = r)), Bun.sleep(deadline - Date.now())]);
    }
    if (reports.length < n)
      return [{ error: `${reports.length} of ${n} results from the pages within ${ms} ms` }];
    return reports.splice(0, n);
  }

  /** Chromium on a page of ours, until `done` settles. */
  async function browse(path: string, done: () => Promise<unknown>) {
    const browser = Bun.spawn(
      [
        CHROMIUM as string,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // The tabs test opens a second tab from the first, and both keep their timers running.
        "--disable-popup-blocking",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        `--user-data-dir=${profile}`,
        `http://127.0.0.1:${page.port}${path}`,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    try {
      return await done();
    } finally {
      browser.kill();
      await browser.exited;
    }
  }

  beforeAll(async () => {
    const built = await Bun.build({
      entrypoints: [join(import.meta.dir, "../../src/client/index.ts")],
      target: "browser",
    });
    if (!built.success) throw new Error("SDK bundle failed");
    bundle = await (built.outputs[0] as Blob).text();
    // The page's own server: the page, the SDK bundle, and a place to post the result.
    page = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/sdk.js")
          return new Response(bundle, { headers: { "content-type": "text/javascript" } });
        if (path === "/result") {
          reports.push(await req.json());
          reported();
          return new Response("ok", { headers: { "access-control-allow-origin": "*" } });
        }
        return new Response(path === "/tabs" ? TABS_PAGE : PAGE, {
          headers: { "content-type": "text/html" },
        });
      },
    });
    h = await harness({ CORS_ORIGINS: `http://127.0.0.1:${page.port}` });
    h.app.listen({ port: 0, hostname: "127.0.0.1" });
    profile = mkdtempSync(join(tmpdir(), "parley-chromium-"));
  });
  afterAll(async () => {
    await h.app.stop(true);
    await h.close();
    page.stop(true);
    rmSync(profile, { recursive: true, force: true });
  });

  it("signs up, connects over msgpackr records, sends and gets the ack; the message is stored for the other member", async () => {
    const api = `http://127.0.0.1:${h.app.server?.port}`;
    const friend = await signup(h.app);
    const [result] = (await browse(`/?api=${encodeURIComponent(api)}&friend=${friend.id}`, () =>
      results(1),
    )) as { ok?: boolean; seq?: number; conversation?: string; error?: string; encoding?: string }[];
    expect(result?.error).toBeUndefined();
    expect(result).toMatchObject({ ok: true, seq: 1, encoding: "msgpackr" });
    const page = await call(h.app, "GET", `/api/conversations/${result?.conversation}/messages`, {
      token: friend.token,
    });
    expect(page.body.items[0].content).toBe("hello from a browser");
  }, 60_000);

  it("two tabs of one session refresh it at the same moments, three times, and it stays alive", async () => {
    const api = `http://127.0.0.1:${h.app.server?.port}`;
    const refreshes = () => h.logs.filter((l) => l.includes("/api/auth/refresh")).length;
    const before = refreshes();
    const tabs = (await browse(`/tabs?role=first&api=${encodeURIComponent(api)}`, () =>
      results(2),
    )) as TabResult[];
    for (const tab of tabs) expect(tab.error).toBeUndefined();
    const [first, second] = ["first", "second"].map((role) => tabs.find((t) => t.role === role) as TabResult);
    expect(first?.locks).toBe("function"); // the browser's Web Locks, not the SDK's in-page lock
    expect(second?.session).toBe(first?.session as string);
    // Each round one tab refreshed and the other took its tokens: the same token in both, a new one a round.
    expect(second?.tokens).toEqual(first?.tokens as string[]);
    expect(new Set(first?.tokens).size).toBe(3);
    expect(refreshes() - before).toBe(3);
    // The session is alive: its newest refresh token was never spent.
    const res = await call(h.app, "POST", "/api/auth/refresh", {
      body: { refresh_token: first?.tokens.at(-1) },
    });
    expect(res.status).toBe(200);
  }, 60_000);
});

interface TabResult {
  role?: string;
  error?: string;
  tokens: string[];
  session: string;
  locks: string;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>Parley SDK</title>
<script type="module">
  const params = new URLSearchParams(location.search);
  const post = (value) => fetch("/result", { method: "POST", body: JSON.stringify(value) });
  try {
    const { ParleyClient } = await import("/sdk.js");
    const client = new ParleyClient({ baseUrl: params.get("api") });
    const tag = Math.random().toString(36).slice(2, 10);
    await client.signup({ email: "b" + tag + "@example.com", username: "b_" + tag, password: "browser passphrase " + tag });
    const conv = await client.rest.conversations.create({ conversation_type: "dm", participant_ids: [params.get("friend")] });
    await client.connect();
    const ack = await client.realtime.send(conv.id, { content: "hello from a browser" });
    post({ ok: true, seq: ack.seq, conversation: conv.id, encoding: client.realtime.negotiatedEncoding });
  } catch (err) {
    post({ error: String(err && err.stack || err) });
  }
</script>`;

/**
 * Two tabs, one session: the first signs up into localStorage and opens the second, which restores it.
 * At three instants both call refresh(); each reports the refresh token it holds after each round.
 */
const TABS_PAGE = `<!doctype html><meta charset="utf-8"><title>Parley SDK tabs</title>
<script type="module">
  const params = new URLSearchParams(location.search);
  const role = params.get("role");
  const post = (value) => fetch("/result", { method: "POST", body: JSON.stringify({ role, ...value }) });
  try {
    const { ParleyClient, localStorageSessionStore } = await import("/sdk.js");
    const client = new ParleyClient({ baseUrl: params.get("api"), store: localStorageSessionStore("parley.test") });
    let at;
    if (role === "first") {
      localStorage.clear();
      const tag = Math.random().toString(36).slice(2, 10);
      await client.signup({ email: "t" + tag + "@example.com", username: "t_" + tag, password: "browser passphrase " + tag });
      at = Date.now() + 3000;
      const tab = window.open("/tabs?role=second&api=" + encodeURIComponent(params.get("api")) + "&at=" + at);
      if (!tab) throw new Error("the second tab did not open");
    } else {
      at = Number(params.get("at"));
      if (!(await client.restore())) throw new Error("no session to restore");
      if (Date.now() > at) throw new Error("the second tab was ready only after the first round began");
    }
    const tokens = [];
    for (let round = 0; round < 3; round++) {
      await new Promise((r) => setTimeout(r, Math.max(0, at + round * 1000 - Date.now())));
      await client.refresh();
      tokens.push(client.session.refreshToken);
    }
    post({ ok: true, tokens, session: client.session.sessionId, locks: typeof navigator.locks?.request });
  } catch (err) {
    post({ error: String(err && err.stack || err) });
  }
</script>`;
