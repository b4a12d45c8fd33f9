// Nothing is acked before it is durable: a server process killed with SIGKILL (or stopped with SIGTERM)
// while a socket streams messages, then started again over the same DATA_DIR, has every message it acked,
// under the seq it acked, once; its conversation's seqs have no hole; and sending again what was not acked
// (same client ids) stores each message exactly once, answering the ones stored before with their seq.

import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSocket, type Running, signup, start } from "./server-process.ts";

const work = mkdtempSync(join(tmpdir(), "parley-durability-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const ENV = {
  DATA_DIR: join(work, "data"),
  // start() waits for the "parley listening" line, an info line.
  LOG_LEVEL: "info",
  // The socket streams as fast as the server acks; the message rate limit is not under test here.
  WS_RATE_PER_SECOND: "1000000",
  WS_RATE_BURST: "1000000",
};
/** Messages in flight on the socket, so that commits batch several appends as under load. */
const WINDOW = 64;
/** One round per signal: a crash, a graceful stop (which must exit 0), a crash again. */
const SIGNALS = ["SIGKILL", "SIGTERM", "SIGKILL"] as const;
const PER_ROUND = 400;

interface Ack {
  seq: number;
  message_id: string;
}

const boot = () => start([process.execPath, "run", "src/index.ts"], ENV);

async function call(server: Running, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/**
 * Sends `ids` as messages, WINDOW in flight, recording each ack; answers when all are acked, or, with
 * `kill`, sends the server that signal as the ack that reaches that count arrives.
 */
function stream(
  server: Running,
  ws: WebSocket,
  conversation: string,
  ids: string[],
  acks: Map<string, Ack>,
  kill?: { after: number; signal: (typeof SIGNALS)[number] },
): Promise<void> {
  let next = 0;
  let received = 0;
  return new Promise((resolve, reject) => {
    const send = () => {
      const id = ids[next++];
      if (id === undefined) return;
      ws.send(
        JSON.stringify({ type: "message", conversation_id: conversation, client_msg_id: id, content: id }),
      );
    };
    ws.onmessage = (e) => {
      const frame = JSON.parse(String(e.data));
      if (frame.type === "error") reject(new Error(`error frame: ${e.data}`));
      if (frame.type !== "ack") return;
      acks.set(frame.client_msg_id, { seq: frame.seq, message_id: frame.message_id });
      received++;
      if (kill !== undefined && received === kill.after) {
        server.proc.kill(kill.signal);
        resolve();
        return;
      }
      if (received === ids.length) resolve();
      else send();
    };
    ws.onclose = () => (kill === undefined ? reject(new Error("socket closed")) : resolve());
    for (let i = 0; i < WINDOW; i++) send();
  });
}

/** Every message of the conversation, in seq order, read page by page from the change feed. */
async function history(server: Running, token: string, conversation: string) {
  const out: { seq: number; id: string; client_msg_id: string | null; content: string }[] = [];
  for (let after = 0; ; ) {
    const page = await call(
      server,
      token,
      "GET",
      `/api/conversations/${conversation}/events?after=${after}&limit=500`,
    );
    expect(page.status).toBe(200);
    out.push(...page.body.items);
    if (!page.body.has_more) return out;
    after = page.body.items.at(-1).seq;
  }
}

describe("a server killed mid-stream", () => {
  it("keeps every acked message under its seq, once, with no hole; a resend stores each message once", async () => {
    let server = await boot();
    const alice = await signup(server.url, "alice");
    const bob = await signup(server.url, "bob");
    const created = await call(server, alice.access_token, "POST", "/api/conversations", {
      conversation_type: "group",
      participant_ids: [bob.user.id],
    });
    expect(created.status).toBe(201);
    const conversation = created.body.id as string;
    const acks = new Map<string, Ack>();
    const sent: string[] = [];
    try {
      for (const [round, signal] of SIGNALS.entries()) {
        const ids = Array.from({ length: PER_ROUND }, (_, i) => `r${round}-m${i}`);
        sent.push(...ids);
        // Killed at a different point of the stream each round: within a batch's commit or between two.
        const after = 100 + Math.floor(Math.random() * (PER_ROUND - 150));
        await stream(server, await openSocket(server.url, alice), conversation, ids, acks, { after, signal });
        const code = await server.proc.exited;
        if (signal === "SIGTERM") {
          // A graceful stop under load: exit 0, and no write failing against a store already closed.
          expect(code).toBe(0);
          expect(server.lines.filter((l) => /"level":"(error|fatal)"/.test(l))).toEqual([]);
        } else expect(code).not.toBe(0);
        server = await boot();

        const stored = await history(server, bob.access_token, conversation);
        const byClient = new Map(stored.filter((m) => m.client_msg_id).map((m) => [m.client_msg_id, m]));
        for (const [client, ack] of acks) {
          expect({ client, seq: byClient.get(client)?.seq, id: byClient.get(client)?.id }).toEqual({
            client,
            seq: ack.seq,
            id: ack.message_id,
          });
        }
        expect(stored.map((m) => m.seq)).toEqual(stored.map((_, i) => i + 1));
        expect(byClient.size).toBe(stored.filter((m) => m.client_msg_id).length);
      }

      // What the sender never heard back about, sent again: stored once each, acked with the stored seq.
      const unacked = sent.filter((id) => !acks.has(id));
      const before = new Map(
        (await history(server, bob.access_token, conversation)).map((m) => [m.client_msg_id, m]),
      );
      const resent = new Map<string, Ack>();
      await stream(server, await openSocket(server.url, alice), conversation, unacked, resent);
      for (const id of unacked) {
        const earlier = before.get(id);
        if (earlier) expect(resent.get(id)?.seq).toBe(earlier.seq);
      }
      const final = await history(server, bob.access_token, conversation);
      expect(final.map((m) => m.seq)).toEqual(final.map((_, i) => i + 1));
      const clients = final.flatMap((m) => (m.client_msg_id ? [m.client_msg_id] : []));
      expect(clients.sort()).toEqual([...sent].sort());
      for (const m of final) if (m.client_msg_id) expect(m.content).toBe(m.client_msg_id);
    } finally {
      server.proc.kill("SIGTERM");
      await server.proc.exited;
    }
  }, 60_000);
});
