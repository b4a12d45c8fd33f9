// A Parley server as a real process, for the tests that start, kill and restart one (entry, crash
// durability): started on a free port with its stdout read until it listens, and signed up to over HTTP.

import { expect } from "bun:test";
import { join } from "node:path";
import type { Subprocess } from "bun";

const root = join(import.meta.dir, "..");

export interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  lines: string[];
}

export async function start(cmd: string[], env: Record<string, string>): Promise<Running> {
  const proc = Bun.spawn(cmd, {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      PORT: "0",
      HOST: "127.0.0.1",
      ...env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  const reader = proc.stdout.getReader();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value);
    const parts = buffer.split("\n");
    buffer = parts.pop() ?? "";
    for (const line of parts) {
      lines.push(line);
      const parsed = JSON.parse(line);
      if (parsed.msg === "parley listening") {
        // Keep draining stdout so the child never blocks on a full pipe, a whole line at a time.
        void (async () => {
          for (;;) {
            const next = await reader.read();
            if (next.done) {
              if (buffer) lines.push(buffer);
              return;
            }
            buffer += decoder.decode(next.value);
            const more = buffer.split("\n");
            buffer = more.pop() ?? "";
            lines.push(...more);
          }
        })();
        return { proc, url: `http://127.0.0.1:${parsed.port}`, lines };
      }
    }
  }
  proc.kill();
  throw new Error(`server did not start: ${lines.join("\n")} ${await new Response(proc.stderr).text()}`);
}

export interface SignedUp {
  access_token: string;
  user: { id: string };
  session_id: string;
}

/** Signs a new account up over HTTP; `name` makes its email, username and password. */
export async function signup(url: string, name: string): Promise<SignedUp> {
  const res = await fetch(`${url}/api/auth/signup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      email: `${name}@example.com`,
      username: name,
      password: `a long ${name} passphrase`,
    }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as SignedUp;
}

/** A JSON socket of the signed-up user's session on the server at `url`, open once its hello arrived. */
export async function openSocket(url: string, user: SignedUp): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace("http", "ws")}/ws/${user.user.id}/${user.session_id}`, [
    "parley.json",
    `bearer.${user.access_token}`,
  ]);
  await new Promise((resolve, reject) => {
    ws.onmessage = resolve;
    ws.onerror = reject;
  });
  return ws;
}
