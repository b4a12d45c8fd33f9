// The REST ceiling: bare Bun.serve answering the three routes the rest scenario measures, with no auth,
// validation or storage; messages are kept in memory. Its sign-in does the one thing a sign-in cannot skip:
// checking the password against an argon2id hash of the same cost as Parley's (one hash serves every user,
// as in bench/lib/seed.ts). The contract, shared with rest-express.mjs (bench/README.md "rest"):
//   POST /api/auth/signin {username, password}           200 {user, access_token, ...} | 401
//   POST /api/conversations/:id/messages {content, ...}   201 a message shaped as Parley's MessageView
//   GET  /api/conversations/:id/messages?before&limit     200 {items, has_more}, oldest first | 404
// Environment: USERNAMES (comma-separated), PASSWORD, HASH_MEMORY_KIB, HASH_TIME, PORT (0: any).

import { randomBytes } from "node:crypto";
import { pageOf, restSettings, type StoredMessage, toMessage } from "./rest-contract.mjs";

const settings = restSettings(process.env);
const hash = await Bun.password.hash(settings.password, {
  algorithm: "argon2id",
  memoryCost: settings.memoryKiB,
  timeCost: settings.time,
});
const users = new Map(settings.usernames.map((username, i) => [username, { id: `user${i}`, username }]));
const conversations = new Map<string, StoredMessage[]>();
const json = (status: number, body: unknown) => Response.json(body, { status });

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  routes: {
    "/api/auth/signin": {
      async POST(req) {
        const body = (await req.json()) as { username?: string; password?: string };
        const user = users.get(body.username ?? "");
        if (!user || !(await Bun.password.verify(body.password ?? "", hash)))
          return json(401, { detail: "invalid credentials", code: "invalid_credentials" });
        return json(200, {
          user,
          access_token: "ceiling",
          refresh_token: randomBytes(32).toString("base64url"),
          token_type: "bearer",
          expires_in: 1800,
          session_id: randomBytes(10).toString("hex"),
        });
      },
    },
    "/api/conversations/:id/messages": {
      async POST(req) {
        const body = (await req.json()) as { content?: string; client_msg_id?: string };
        const log = conversations.get(req.params.id) ?? [];
        conversations.set(req.params.id, log);
        const message = toMessage(req.params.id, "user0", log.length + 1, body);
        log.push(message);
        return json(201, message);
      },
      GET(req) {
        const log = conversations.get(req.params.id);
        if (!log) return json(404, { detail: "conversation not found", code: "not_found" });
        const query = new URL(req.url).searchParams;
        return json(200, pageOf(log, query.get("before"), query.get("limit")));
      },
    },
  },
  fetch: () => json(404, { detail: "not found", code: "not_found" }),
  // A body that is not JSON: the one check even the ceiling makes, so that bad input is a 400, not a crash.
  error: (err) => json(400, { detail: err.message, code: "bad_request" }),
});

console.log(JSON.stringify({ port: server.port }));
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
