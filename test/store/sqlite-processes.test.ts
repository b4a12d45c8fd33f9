// Two server processes over one SQLite file, as scale-out on one machine runs them: appends to one
// conversation from both at once, each process with its own connection and group commit, take every seq
// exactly once with no gap, and a client key sent through both is stored once.

import { afterAll, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { conversation, member } from "./conversations-contract.ts";

const dir = mkdtempSync(join(tmpdir(), "parley-processes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TURNS = 40;
const PER_TURN = 50;

/** Reads a stream line by line: each call answers the next line. */
function lines(stream: ReadableStream<Uint8Array>): () => Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return async () => {
    for (;;) {
      const newline = buffer.indexOf("\n");
      if (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) return buffer;
      buffer += decoder.decode(value, { stream: true });
    }
  };
}

/** A process that appends TURNS × PER_TURN messages, PER_TURN at a time, and prints [status, seq, id] each. */
function appender(file: string, tag: string) {
  const script = `
import { openSqliteStore } from ${JSON.stringify(join(import.meta.dir, "../../src/store/sqlite/index.ts"))};
import { draft } from ${JSON.stringify(join(import.meta.dir, "../../src/modules/messages/log.ts"))};
const store = await openSqliteStore(${JSON.stringify(file)});
// Both processes start appending together: each says it is ready, then waits for the word.
console.log("ready");
for await (const _ of console) break;
const out = [];
for (let turn = 0; turn < ${TURNS}; turn++) {
  const batch = Array.from({ length: ${PER_TURN} }, (_, i) => {
    const n = turn * ${PER_TURN} + i;
    return store.messages.append(
      draft(
        {
          id: "${tag}-" + String(n).padStart(4, "0"),
          conversation_id: "c-1",
          sender_id: "u-alice",
          // Every tenth message is sent through both processes, as a client retrying on another node would.
          client_msg_id: n % 10 === 0 ? "both-" + n : "${tag}-key-" + n,
          content: "from ${tag} " + n,
          message_type: "text",
        },
        1700000000000 + n,
      ),
    );
  });
  for (const r of await Promise.all(batch)) out.push([r.status, r.message.seq, r.message.id]);
}
await store.close();
console.log(JSON.stringify(out));
`;
  return Bun.spawn([process.execPath, "-e", script], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
}

it("gives appends from two processes every seq once, gap-free, and one message per client key", async () => {
  const file = join(dir, "parley.db");
  const setup = await openSqliteStore(file);
  for (const name of ["alice", "bob"])
    await setup.users.create({
      id: `u-${name}`,
      email: `${name}@example.com`,
      username: name,
      display_name: name,
      password_hash: "x",
      email_verified_at: null,
      status: "offline",
      chosen_status: "online",
      role: "user",
      last_seen: null,
      created_at: 0,
      updated_at: 0,
    });
  await setup.conversations.create(conversation("c-1"), [member("c-1", "u-alice"), member("c-1", "u-bob")]);
  await setup.close();

  const procs = [appender(file, "a"), appender(file, "b")];
  const readers = procs.map((p) => lines(p.stdout));
  for (const read of readers) expect(await read()).toBe("ready");
  for (const p of procs) {
    p.stdin.write("go\n");
    await p.stdin.flush();
  }
  const outputs = await Promise.all(readers.map((read) => read()));
  const errors = await Promise.all(procs.map((p) => new Response(p.stderr).text()));
  expect({ exits: await Promise.all(procs.map((p) => p.exited)), errors }).toEqual({
    exits: [0, 0],
    errors: ["", ""],
  });
  const perProcess = outputs.map((o) => JSON.parse(o) as [string, number, string][]);
  const results = perProcess.flat();
  // They took turns at the lock (neither waited out the other's whole run): their seqs interleave.
  const [a, b] = perProcess.map((r) =>
    r.filter(([status]) => status === "created").map(([, seq]) => seq),
  ) as [number[], number[]];
  expect(Math.min(...a) < Math.max(...b) && Math.min(...b) < Math.max(...a)).toBe(true);

  const created = results.filter(([status]) => status === "created");
  const total = 2 * TURNS * PER_TURN;
  const shared = (TURNS * PER_TURN) / 10;
  // Each shared key is created by one process and answered as a duplicate, the same message, to the other.
  expect(created).toHaveLength(total - shared);
  const seqs = created.map(([, seq]) => seq).sort((x, y) => x - y);
  expect(seqs).toEqual(Array.from({ length: total - shared }, (_, i) => i + 1));
  const duplicates = results.filter(([status]) => status === "duplicate");
  expect(duplicates).toHaveLength(shared);
  const createdIds = new Set(created.map(([, , id]) => id));
  for (const [, , id] of duplicates) expect(createdIds.has(id)).toBe(true);

  const check = await openSqliteStore(file);
  try {
    expect((await check.conversations.byId("c-1"))?.last_seq).toBe(total - shared);
    const all = await check.messages.events("c-1", 0, total);
    expect(all.map((m) => m.seq)).toEqual(seqs);
  } finally {
    await check.close();
  }
}, 60_000);
