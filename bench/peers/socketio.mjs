// A peer: a Socket.IO 4 server on Node.js. Clients join rooms by the `rooms` handshake query and emit
// "message" {conversation_id, ...}; the server relays it to the room with socket.to(room).emit (sender excluded,
// like Bun's ws.publish and the ws peer), and calls the emit's acknowledgement if it asked for one. With
// REDIS_URL (cross-node) it runs the official Redis adapter (@socket.io/redis-adapter on ioredis, channels
// under REDIS_PREFIX), so the same emit reaches every node. With RECOVERY_MS (the resume storm) it keeps
// Socket.IO's connection state recovery for that long: a client that lost its connection gets the packets
// it missed when it reconnects (in memory, one node).

import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";

const http = createServer();
// PING_INTERVAL_MS / PING_TIMEOUT_MS: Engine.IO's heartbeat (defaults 25 s / 20 s), shorter in tests.
const io = new Server(http, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
  pingInterval: Number(process.env.PING_INTERVAL_MS ?? 25_000),
  pingTimeout: Number(process.env.PING_TIMEOUT_MS ?? 20_000),
  ...(process.env.RECOVERY_MS
    ? { connectionStateRecovery: { maxDisconnectionDuration: Number(process.env.RECOVERY_MS) } }
    : {}),
});
const redisUrl = process.env.REDIS_URL;
const pub = redisUrl ? new Redis(redisUrl) : undefined;
const sub = pub?.duplicate();
if (pub && sub) {
  await Promise.all([pub.ping(), sub.ping()]);
  io.adapter(createAdapter(pub, sub, { key: process.env.REDIS_PREFIX ?? "socket.io" }));
}
io.on("connection", (socket) => {
  const joined = String(socket.handshake.query.rooms ?? "")
    .split(",")
    .filter(Boolean);
  for (const room of joined) socket.join(room);
  socket.on("message", (frame, ack) => {
    if (typeof frame?.conversation_id === "string") socket.to(frame.conversation_id).emit("message", frame);
    if (typeof ack === "function") ack();
  });
});
http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () =>
  console.log(JSON.stringify({ port: http.address().port })),
);
process.on("SIGTERM", () => {
  io.close();
  pub?.disconnect();
  sub?.disconnect();
  process.exit(0);
});
