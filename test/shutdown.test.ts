// Stopping the server as an orchestrator does (SIGTERM, then SIGTERM or SIGKILL again when it is slow):
// a real process on a free port, with a mail server or a client that never answers.

import { afterAll, afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSocket, type Running, signup, start } from "./server-process.ts";

const work = mkdtempSync(join(tmpdir(), "parley-shutdown-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An SMTP server that takes connections and never says a word (a hung relay, a firewall's tarpit). */
function silentSmtp() {
  const held: { end(): void }[] = [];
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { open: (s) => void held.push(s), data() {} },
  });
  cleanups.push(() => {
    for (const s of held) s.end();
    server.stop(true);
  });
  return { url: `smtp://127.0.0.1:${server.port}`, connections: () => held.length };
}

async function serverMailingThrough(smtpUrl: string, name: string): Promise<Running> {
  const server = await start([process.execPath, "run", "src/index.ts"], {
    DATA_DIR: join(work, name),
    SMTP_URL: smtpUrl,
  });
  cleanups.push(() => server.proc.kill("SIGKILL"));
  await signup(server.url, name);
  const asked = await fetch(`${server.url}/api/auth/magic-link`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: `${name}@example.com` }),
  });
  expect(asked.status).toBe(202);
  return server;
}

/** The exit code, or "running" if the process has not exited within `ms`. */
const exitWithin = (server: Running, ms: number) =>
  Promise.race([server.proc.exited, Bun.sleep(ms).then(() => "running" as const)]);

async function waitFor(check: () => boolean, ms = 5000) {
  for (const deadline = Date.now() + ms; !check(); await Bun.sleep(20)) {
    if (Date.now() > deadline) throw new Error("timed out");
  }
}

describe("stopping the server", () => {
  it("exits 0 soon after SIGTERM while a mail it was sending hangs on the SMTP server", async () => {
    const smtp = silentSmtp();
    const server = await serverMailingThrough(smtp.url, "hungmail");
    await waitFor(() => smtp.connections() > 0);
    server.proc.kill("SIGTERM");
    expect(await exitWithin(server, 8000)).toBe(0);
  }, 30_000);

  it("exits at once on a second signal while the first one's shutdown is still waiting", async () => {
    const smtp = silentSmtp();
    const server = await serverMailingThrough(smtp.url, "secondsignal");
    await waitFor(() => smtp.connections() > 0);
    server.proc.kill("SIGTERM");
    await waitFor(() => server.lines.some((l) => l.includes("shutting down")));
    await Bun.sleep(200);
    server.proc.kill("SIGTERM");
    const code = await exitWithin(server, 1500);
    expect(code).not.toBe("running");
    expect(code).not.toBe(0);
  }, 30_000);

  it("tells a socket that opens during shutdown to reconnect elsewhere (4000 or 503), never leaves it to drop", async () => {
    const server = await start([process.execPath, "run", "src/index.ts"], { DATA_DIR: join(work, "late") });
    cleanups.push(() => server.proc.kill("SIGKILL"));
    const user = await signup(server.url, "latecomer");
    const first = await openSocket(server.url, user);
    // A client told 4000 reconnects at once; behind no balancer (or one slow to notice) it is back here.
    const second = new Promise<{ code: number; opened: boolean }>((resolve) => {
      first.onclose = () => {
        const ws = new WebSocket(
          `${server.url.replace("http", "ws")}/ws/${user.user.id}/${user.session_id}`,
          ["parley.json", `bearer.${user.access_token}`],
        );
        let opened = false;
        ws.onmessage = () => {
          opened = true;
        };
        ws.onclose = (e) => resolve({ code: e.code, opened });
      };
    });
    server.proc.kill("SIGTERM");
    const { code, opened } = await second;
    // Refused at the upgrade (503: the browser sees 1006 without a hello), or opened and told 4000.
    expect(opened ? code : "refused").toBe(opened ? 4000 : "refused");
    expect(await exitWithin(server, 10_000)).toBe(0);
  }, 30_000);

  it("exits 0 soon after SIGTERM while a client is still sending its request body, byte by byte", async () => {
    const server = await start([process.execPath, "run", "src/index.ts"], {
      DATA_DIR: join(work, "trickle"),
    });
    cleanups.push(() => server.proc.kill("SIGKILL"));
    const { port } = new URL(server.url);
    const socket = connect(Number(port), "127.0.0.1");
    cleanups.push(() => socket.destroy());
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(
      "POST /api/auth/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    );
    const drip = setInterval(() => socket.write(" "), 500);
    cleanups.push(() => clearInterval(drip));
    await Bun.sleep(300);
    server.proc.kill("SIGTERM");
    expect(await exitWithin(server, 15000)).toBe(0);
  }, 40_000);
});
