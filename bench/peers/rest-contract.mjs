// What the REST peers (rest-bun.ts, rest-express.mjs) share: their settings from the environment, a stored
// message shaped as Parley's MessageView (the same fields, so a page's JSON costs alike), and a history page.
// Plain JavaScript for Node.js 20, which runs no TypeScript; its types are in rest-contract.d.mts.

const PAGE_MAX = 200;

export function restSettings(env) {
  const usernames = (env.USERNAMES ?? "").split(",").filter(Boolean);
  if (!usernames.length) throw new Error("USERNAMES: give the users' names, comma-separated");
  const memoryKiB = Number(env.HASH_MEMORY_KIB ?? 65536);
  const time = Number(env.HASH_TIME ?? 2);
  if (!Number.isInteger(memoryKiB) || memoryKiB < 8) throw new Error("HASH_MEMORY_KIB: an integer ≥ 8");
  if (!Number.isInteger(time) || time < 1) throw new Error("HASH_TIME: an integer ≥ 1");
  if (!env.PASSWORD) throw new Error("PASSWORD: give the users' password");
  return { usernames, password: env.PASSWORD, memoryKiB, time, secret: env.SECRET ?? "" };
}

let counter = 0;
/** A 20-character id, time-ordered as Parley's are. */
function newId() {
  counter = (counter + 1) % 0x1000000;
  return Date.now().toString(36).padStart(10, "0") + counter.toString(36).padStart(10, "0");
}

export function toMessage(conversationId, senderId, seq, body) {
  const now = new Date().toISOString();
  return {
    id: newId(),
    conversation_id: conversationId,
    sender_id: senderId,
    seq,
    version_seq: seq,
    client_msg_id: typeof body?.client_msg_id === "string" ? body.client_msg_id : null,
    content: typeof body?.content === "string" ? body.content : "",
    message_type: "text",
    status: "sent",
    reply_to: null,
    attachments: [],
    reactions: [],
    envelope: null,
    edited_at: null,
    deleted: false,
    created_at: now,
    updated_at: now,
  };
}

/** The `limit` messages before seq `before` (default: the newest), oldest first, as Parley pages. */
export function pageOf(log, before, limit) {
  const end = before === null || before === undefined ? log.length : Math.min(log.length, Number(before) - 1);
  const size = Math.min(PAGE_MAX, Math.max(1, Number(limit ?? 50) || 50));
  const start = Math.max(0, end - size);
  return { items: log.slice(start, Math.max(start, end)), has_more: start > 0 };
}
