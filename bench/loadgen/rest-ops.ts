// The rest scenario's requests, as every target gets them: a raw fetch with a JSON body and a bearer token,
// and the three measured operations (a send, a history page, a sign-in), shared by the scenario (its setup
// and fill) and its generator processes (loadgen/rest-worker.ts).

import { seeded, sentence } from "../lib/random.ts";
import { BENCH_PASSWORD } from "../lib/seed.ts";

/** What one operation needs to know about the target: its users, their tokens and the conversation. */
export interface RestPlan {
  url: string;
  usernames: string[];
  /** Each user's access token, index for index with usernames. */
  tokens: string[];
  conversationId: string;
  /** Messages in the conversation (history pages pick a point among them). */
  messages: number;
  page: number;
}

export type RestOp = "send" | "history page" | "signin";

/** A raw request; throws on an unexpected status with the answer's start. */
export async function call(url: string, method: string, path: string, body?: unknown, token?: string) {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(answer).slice(0, 200)}`);
  return answer;
}

export async function signin(url: string, username: string): Promise<string> {
  const answer = await call(url, "POST", "/api/auth/signin", { username, password: BENCH_PASSWORD });
  if (typeof answer.access_token !== "string") throw new Error(`signin: no access_token for ${username}`);
  return answer.access_token;
}

/** Operation `op` for loop `w` (its user is w modulo the users), with text and pages drawn from `seed`. */
export function restOp(plan: RestPlan, op: RestOp, seed: number): (w: number) => Promise<void> {
  const { int } = seeded(seed);
  const users = plan.usernames.length;
  const path = `/api/conversations/${encodeURIComponent(plan.conversationId)}/messages`;
  if (op === "send")
    return async (w) => {
      const body = { content: sentence(int), client_msg_id: crypto.randomUUID() };
      await call(plan.url, "POST", path, body, plan.tokens[w % users]);
    };
  if (op === "history page")
    return async (w) => {
      const before = int(plan.page + 1, plan.messages + 1);
      const query = `${path}?before=${before}&limit=${plan.page}`;
      const page = await call(plan.url, "GET", query, undefined, plan.tokens[w % users]);
      const items = page.items as Array<{ seq: number }>;
      if (items.length !== plan.page || items.at(-1)?.seq !== before - 1)
        throw new Error(`page before ${before}: ${items.length} items`);
    };
  return async (w) => {
    await signin(plan.url, plan.usernames[w % users] as string);
  };
}
