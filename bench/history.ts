// Checks that history pages and catch-up events stay fast in one conversation of 1,000,000 messages on
// the SQLite store: the median of page(before), page(after) and events must be under 5 ms, or exit 1.

import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { newId } from "../src/lib/ids.ts";
import { clientKey } from "../src/store/sqlite/client-key.ts";
import { openSqliteStore } from "../src/store/sqlite/index.ts";
import type { MessageRecord, MessagesRepo, NewConversation, Store } from "../src/store/types.ts";
import { seeded, sentence as words } from "./lib/random.ts";
import { machine, markdownTable, round3, type Summary, summarize, writeResults } from "./lib/report.ts";

const LIMIT = 50;
const QUERIES = 2_000;
const WARMUP = 200;
const BUDGET_MS = 5;
/** Appends timed before deciding whether the rest can go through the port too. */
const APPEND_SAMPLE = 10_000;
const APPEND_BUDGET_S = 180;
const BULK_BATCH = 50_000;
/** A word no generated sentence contains, put in the middle message: search must find it, bulk-inserted or not. */
const SENTINEL = "benchsentinel";

type Draft = Omit<MessageRecord, "seq" | "version_seq">;
type Patch = Parameters<MessagesRepo["change"]>[1];

const { values: args } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    messages: { type: "string", default: "1000000" },
    keep: { type: "boolean", default: false },
  },
  strict: true,
});
const total = Number(args.messages);
if (!Number.isSafeInteger(total) || total < 1_000)
  throw new Error(`--messages must be an integer of at least 1000, got "${args.messages}"`);
const editCount = Math.min(10_000, Math.floor(total / 100));

// Ids stay random (newId), as in the app; text and query positions are seeded.
const { int } = seeded(0x5eed);
const sentence = () => words(int);

const dir = mkdtempSync(join(tmpdir(), "parley-bench-history-"));
const dbPath = join(dir, "parley.db");
const start = Date.now() - (total + editCount + 1) * 1_000; // one event a second, ending now
const at = (seq: number) => start + seq * 1_000;
const senders = Array.from({ length: 8 }, () => newId(start));
const conversation: NewConversation = {
  id: newId(start),
  name: "history bench",
  topic: null,
  conversation_type: "group",
  encrypted: false,
  dm_key: null,
  last_message_id: null,
  last_activity: start,
  last_seq: 0,
  message_count: 0,
  created_by: senders[0] as string,
  created_at: start,
  updated_at: start,
};
/** ids[seq - 1] is the id of the message with that seq. */
const ids: string[] = [];

function draft(seq: number): Draft {
  const id = newId(at(seq));
  ids[seq - 1] = id;
  const content = seq === Math.ceil(total / 2) ? `${sentence()} ${SENTINEL}` : sentence();
  return {
    id,
    conversation_id: conversation.id,
    sender_id: senders[seq % senders.length] as string,
    client_msg_id: newId(at(seq)),
    content,
    message_type: "text",
    reply_to: seq > 1 && seq % 20 === 0 ? (ids[int(0, seq - 2)] as string) : null,
    attachments: [],
    reactions: [],
    envelope: null,
    edited_at: null,
    deleted: false,
    created_at: at(seq),
    updated_at: at(seq),
  };
}

/** Rows `from..to` straight into `messages`, then the counters append keeps. */
function bulkInsert(from: number, to: number) {
  const db = new Database(dbPath);
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const columns =
      "id, conversation_id, sender_id, seq, version_seq, client_msg_id, content, message_type, reply_to, " +
      "attachments, reactions, envelope, edited_at, deleted, created_at, updated_at";
    // conv and client_key as the store writes them (schema.ts, migrations 5 and 6).
    const insert = db.query(
      `INSERT INTO messages (${columns}, conv, client_key)
       VALUES (${columns.replace(/\w+/g, "?")}, (SELECT num FROM conversations WHERE id = ?2), ?)`,
    );
    const finish = db.query(
      `UPDATE conversations SET last_seq = ?1, message_count = message_count + ?2, last_message_id = ?3,
         last_activity = MAX(last_activity, ?4) WHERE id = ?5`,
    );
    const batch = db.transaction((lo: number, hi: number) => {
      for (let seq = lo; seq <= hi; seq++) {
        const m = draft(seq);
        insert.run(
          ...[m.id, m.conversation_id, m.sender_id, seq, seq, m.client_msg_id, m.content, m.message_type],
          ...[m.reply_to, "[]", "[]", null, null, 0, m.created_at, m.updated_at],
          clientKey(m.sender_id, m.client_msg_id as string),
        );
      }
      if (hi === to) finish.run(to, to - from + 1, ids[to - 1] as string, at(to), conversation.id);
    });
    for (let lo = from; lo <= to; lo += BULK_BATCH) {
      batch(lo, Math.min(to, lo + BULK_BATCH - 1));
      progress(`bulk insert ${Math.min(to, lo + BULK_BATCH - 1).toLocaleString()}/${to.toLocaleString()}`);
    }
  } finally {
    db.close();
  }
}

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

async function fill(store: Store) {
  const t0 = performance.now();
  const sample = Math.min(APPEND_SAMPLE, total);
  for (let seq = 1; seq <= sample; seq++) await appendOne(store, seq);
  const appendPerSecond = sample / ((performance.now() - t0) / 1_000);
  const projectedAppendSeconds = (total - sample) / appendPerSecond;
  progress(
    `append: ${Math.round(appendPerSecond)}/s, the rest would take ${Math.round(projectedAppendSeconds)} s`,
  );
  const bulk = projectedAppendSeconds > APPEND_BUDGET_S;
  if (bulk) bulkInsert(sample + 1, total);
  else for (let seq = sample + 1; seq <= total; seq++) await appendOne(store, seq);
  const seconds = (performance.now() - t0) / 1_000;

  const t1 = performance.now();
  for (let k = 0; k < editCount; k++) {
    const seq = int(1, total);
    const now = at(total + k + 1);
    // The service's three kinds of change: 10% deletes, 30% reaction changes, 60% content edits.
    const patch: Patch =
      k % 10 === 0
        ? { content: "", attachments: [], reactions: [], deleted: true, updated_at: now }
        : k % 10 <= 3
          ? { reactions: [{ user_id: senders[k % senders.length] as string, emoji: "👍" }], updated_at: now }
          : { content: `${sentence()} (edited)`, edited_at: now, updated_at: now };
    if (!(await store.messages.change(ids[seq - 1] as string, patch)))
      throw new Error(`change: ${seq} missing`);
  }
  const editSeconds = (performance.now() - t1) / 1_000;

  const c = await store.conversations.byId(conversation.id);
  if (c?.last_seq !== total + editCount || c.message_count !== total)
    throw new Error(`conversation counters off: last_seq ${c?.last_seq}, message_count ${c?.message_count}`);
  const found = await store.messages.search(conversation.id, SENTINEL, 5);
  if (found.length !== 1 || found[0]?.seq !== Math.ceil(total / 2))
    throw new Error(`search for the sentinel found ${found.length} messages`);
  return {
    method: bulk ? "append, then bulk insert" : "append",
    appended: bulk ? sample : total,
    bulkInserted: bulk ? total - sample : 0,
    appendPerSecond: Math.round(appendPerSecond),
    projectedAppendSeconds: Math.round(projectedAppendSeconds),
    seconds: round3(seconds),
    edits: editCount,
    editSeconds: round3(editSeconds),
  };
}

async function appendOne(store: Store, seq: number) {
  const result = await store.messages.append(draft(seq));
  if (result.status !== "created" || result.message.seq !== seq)
    throw new Error(`append ${seq}: ${result.status}`);
}

/** Times `QUERIES` calls after `WARMUP` untimed ones; `check` runs outside the timed span. */
async function measure(
  name: string,
  arg: () => number,
  run: (n: number) => Promise<MessageRecord[]>,
  check: (n: number, rows: MessageRecord[]) => boolean,
): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + QUERIES; i++) {
    const n = arg();
    const t0 = performance.now();
    const rows = await run(n);
    const ms = performance.now() - t0;
    if (!check(n, rows)) throw new Error(`${name}(${n}): unexpected page of ${rows.length}`);
    if (i >= WARMUP) samples.push(ms);
  }
  return summarize(samples);
}

const ascending = (rows: MessageRecord[], key: "seq" | "version_seq") =>
  rows.every((r, i) => i === 0 || r[key] > (rows[i - 1] as MessageRecord)[key]);

async function queries(store: Store) {
  const id = conversation.id;
  const lastSeq = total + editCount;
  const before = await measure(
    "page before",
    () => int(1, total + 1),
    (b) => store.messages.page(id, { before: b, limit: LIMIT }),
    (b, rows) =>
      rows.length === Math.min(LIMIT, b - 1) &&
      (rows.length === 0 || rows.at(-1)?.seq === b - 1) &&
      ascending(rows, "seq"),
  );
  const after = await measure(
    "page after",
    () => int(0, total),
    (a) => store.messages.page(id, { after: a, limit: LIMIT }),
    (a, rows) =>
      rows.length === Math.min(LIMIT, total - a) &&
      (rows.length === 0 || rows[0]?.seq === a + 1) &&
      ascending(rows, "seq"),
  );
  const events = await measure(
    "events",
    () => int(0, lastSeq - 1),
    (a) => store.messages.events(id, a, LIMIT),
    (a, rows) =>
      rows.length > 0 &&
      rows.length <= LIMIT &&
      (rows[0]?.version_seq ?? 0) > a &&
      ascending(rows, "version_seq"),
  );
  return { before, after, events };
}

function fileBytes(): number {
  return [dbPath, `${dbPath}-wal`].reduce((sum, p) => sum + (existsSync(p) ? statSync(p).size : 0), 0);
}

const size = (bytes: number) =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main() {
  const store = openSqliteStore(dbPath);
  let result: Awaited<ReturnType<typeof queries>>;
  let filled: Awaited<ReturnType<typeof fill>>;
  try {
    await store.conversations.create(conversation, [
      {
        conversation_id: conversation.id,
        user_id: conversation.created_by,
        role: "owner",
        joined_at: start,
        joined_seq: 0,
        last_read_seq: 0,
        delivered_seq: 0,
        delivered_at: null,
        read_at: null,
      },
    ]);
    progress(`filling ${total.toLocaleString()} messages into ${dbPath}`);
    filled = await fill(store);
    progress(
      `filled in ${filled.seconds.toFixed(1)} s; ${editCount} edits in ${filled.editSeconds.toFixed(1)} s`,
    );
    result = await queries(store);
  } finally {
    await store.close();
  }
  const dbBytes = fileBytes();
  const pass = Object.values(result).every((s) => s.p50 < BUDGET_MS);
  const host = machine();

  const table = markdownTable([
    [`page before (limit ${LIMIT})`, result.before],
    [`page after (limit ${LIMIT})`, result.after],
    [`events (limit ${LIMIT})`, result.events],
  ]);
  console.log(
    [
      `## History on SQLite: ${total.toLocaleString()} messages in one conversation`,
      "",
      `- machine: ${host.cores} cores (${host.cpu}), ${host.memoryGiB} GiB memory, ${host.platform}, Bun ${host.bun}`,
      `- fill: ${filled.appended.toLocaleString()} through append()` +
        (filled.bulkInserted > 0 ? `, then ${filled.bulkInserted.toLocaleString()} bulk-inserted,` : "") +
        ` in ${filled.seconds.toFixed(1)} s (the first ${Math.min(APPEND_SAMPLE, total).toLocaleString()}` +
        ` appends ran at ${filled.appendPerSecond.toLocaleString()}/s)`,
      `- edits: ${filled.edits.toLocaleString()} through change() in ${filled.editSeconds.toFixed(1)} s`,
      `- database file: ${size(dbBytes)}`,
      "",
      table,
      "",
      `Median budget ${BUDGET_MS} ms: ${pass ? "PASS" : "FAIL"}`,
    ].join("\n"),
  );
  const paths = writeResults("history", {
    benchmark: "history",
    date: new Date().toISOString(),
    machine: host,
    messages: total,
    limit: LIMIT,
    budgetMs: BUDGET_MS,
    fill: filled,
    dbBytes,
    queries: result,
    pass,
  });
  progress(`wrote ${paths.join(", ")}`);
  if (!pass) process.exitCode = 1;
}

try {
  await main();
} finally {
  if (args.keep) progress(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
