// A REST peer: Node.js and Express 5, as an app team would write these three routes without Parley: JSON
// bodies, sign-in against an argon2id hash of the same cost as Parley's (the `argon2` package; one hash
// serves every user, as in bench/lib/seed.ts), an HS256 access token (jose) checked on every other request,
// sends made idempotent by client_msg_id, and messages kept in memory (no storage). Same contract as
// rest-bun.ts (bench/README.md "rest"); SECRET signs the tokens.

import argon2 from "argon2";
import express from "express";
import { jwtVerify, SignJWT } from "jose";
import { pageOf, restSettings, toMessage } from "./rest-contract.mjs";

const settings = restSettings(process.env);
const secret = new TextEncoder().encode(settings.secret || "a bench secret of at least 32 bytes!");
const hash = await argon2.hash(settings.password, {
  type: argon2.argon2id,
  memoryCost: settings.memoryKiB,
  timeCost: settings.time,
  parallelism: 1,
});
const users = new Map(settings.usernames.map((username, i) => [username, { id: `user${i}`, username }]));
/** conversation id -> its messages, and its client_msg_id -> message. */
const conversations = new Map();

const app = express();
app.use(express.json({ limit: "64kb" }));

app.post("/api/auth/signin", async (req, res) => {
  const user = users.get(req.body?.username ?? "");
  if (!user || !(await argon2.verify(hash, String(req.body?.password ?? ""))))
    return res.status(401).json({ detail: "invalid credentials", code: "invalid_credentials" });
  const access_token = await new SignJWT({ sid: "s" })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(user.id)
    .setIssuedAt()
    .setExpirationTime("30m")
    .sign(secret);
  res.json({
    user,
    access_token,
    refresh_token: crypto.randomUUID(),
    token_type: "bearer",
    expires_in: 1800,
    session_id: crypto.randomUUID(),
  });
});

/** Every route below needs a valid bearer token. */
app.use(async (req, res, next) => {
  const token = /^Bearer (.+)$/.exec(req.get("authorization") ?? "")?.[1];
  try {
    if (!token) throw new Error("no token");
    req.userId = (await jwtVerify(token, secret, { algorithms: ["HS256"] })).payload.sub;
    next();
  } catch {
    res.status(401).json({ detail: "not authenticated", code: "unauthorized" });
  }
});

app.post("/api/conversations/:id/messages", (req, res) => {
  const conversation = conversations.get(req.params.id) ?? { log: [], byClientId: new Map() };
  conversations.set(req.params.id, conversation);
  const clientId = req.body?.client_msg_id;
  const known = typeof clientId === "string" ? conversation.byClientId.get(clientId) : undefined;
  if (known) return res.status(200).json(known);
  const message = toMessage(req.params.id, req.userId, conversation.log.length + 1, req.body);
  conversation.log.push(message);
  if (typeof clientId === "string") conversation.byClientId.set(clientId, message);
  res.status(201).json(message);
});

app.get("/api/conversations/:id/messages", (req, res) => {
  const conversation = conversations.get(req.params.id);
  if (!conversation) return res.status(404).json({ detail: "conversation not found", code: "not_found" });
  res.json(pageOf(conversation.log, req.query.before, req.query.limit));
});

/** express.json's refusals (bad JSON 400, too large 413) with their own codes; anything else says nothing more. */
app.use((err, _req, res, _next) => {
  const status = err.status ?? 500;
  const code = status === 413 ? "payload_too_large" : status < 500 ? "bad_request" : "internal";
  res.status(status).json({ detail: status < 500 ? err.message : "internal error", code });
});

const server = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => {
  server.close();
  process.exit(0);
});
