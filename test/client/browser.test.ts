// The SDK in a real browser: headless Chromium loads a page that bundles the SDK, signs up over REST
// (CORS), opens a msgpack WebSocket with the bearer subprotocol, sends a message and reports its ack.
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
  let report: (value: unknown) => void;
  const reported = new Promise<unknown>((resolve) => {
    report = resolve;
  });

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
          report(await req.json());
          return new Response("ok", { headers: { "access-control-allow-origin": "*" } });
        }
        return new Response(PAGE, { headers: { "content-type": "text/html" } });
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

  it("signs up, connects over msgpack, sends and gets the ack; the message is stored for the other member", async () => {
    const api = `http://127.0.0.1:${h.app.server?.port}`;
    const friend = await signup(h.app);
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
        `--user-data-dir=${profile}`,
        `http://127.0.0.1:${page.port}/?api=${encodeURIComponent(api)}&friend=${friend.id}`,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    try {
      const result = (await Promise.race([
        reported,
        Bun.sleep(30_000).then(() => ({ error: "no result from the page within 30 s" })),
      ])) as { ok?: boolean; seq?: number; conversation?: string; error?: string; encoding?: string };
      expect(result.error).toBeUndefined();
      expect(result).toMatchObject({ ok: true, seq: 1, encoding: "msgpack" });
      const page = await call(h.app, "GET", `/api/conversations/${result.conversation}/messages`, {
        token: friend.token,
      });
      expect(page.body.items[0].content).toBe("hello from a browser");
    } finally {
      browser.kill();
      await browser.exited;
    }
  }, 60_000);
});

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
