// A peer: Node.js with the `ws` package, rooms as Sets and a send loop, as users of ws write it. Same wire
// contract as the ceiling: `?rooms=a,b` to join, a msgpack {type: "message", conversation_id} is relayed as is.
// With REDIS_URL (cross-node), as the ceiling does: a frame also goes to Redis on REDIS_PREFIX:room behind
// this node's id, and a node listens to a room's channel while it has members there.

import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { Packr } from "msgpackr";
import { WebSocketServer } from "ws";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const NODE_ID = randomBytes(8);
const channelPrefix = `${process.env.REDIS_PREFIX ?? "node-ws"}:`;
const redisUrl = process.env.REDIS_URL;
const pub = redisUrl ? new Redis(redisUrl) : undefined;
const sub = redisUrl ? new Redis(redisUrl) : undefined;
/** room -> sockets in it */
const rooms = new Map();

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  perMessageDeflate: false,
});
wss.on("connection", (ws, req) => {
  const joined = (new URL(req.url, "http://x").searchParams.get("rooms") ?? "").split(",").filter(Boolean);
  for (const room of joined) {
    if (!rooms.has(room)) {
      rooms.set(room, new Set());
      sub?.subscribe(channelPrefix + room);
    }
    rooms.get(room).add(ws);
  }
  ws.on("message", (data, isBinary) => {
    const frame = packr.unpack(data);
    const members = typeof frame?.conversation_id === "string" ? rooms.get(frame.conversation_id) : undefined;
    if (!members) return;
    for (const other of members)
      if (other !== ws && other.readyState === 1) other.send(data, { binary: isBinary });
    pub?.publish(channelPrefix + frame.conversation_id, Buffer.concat([NODE_ID, data]));
  });
  ws.on("close", () => {
    for (const room of joined) {
      const members = rooms.get(room);
      members?.delete(ws);
      if (sub && members?.size === 0) {
        rooms.delete(room);
        sub.unsubscribe(channelPrefix + room);
      }
    }
  });
});

sub?.on("messageBuffer", (channel, message) => {
  if (message.subarray(0, NODE_ID.length).equals(NODE_ID)) return;
  const members = rooms.get(channel.subarray(channelPrefix.length).toString());
  if (!members) return;
  const data = message.subarray(NODE_ID.length);
  for (const ws of members) if (ws.readyState === 1) ws.send(data, { binary: true });
});

await Promise.all([new Promise((resolve) => wss.once("listening", resolve)), pub?.ping(), sub?.ping()]);
console.log(JSON.stringify({ port: wss.address().port }));
process.on("SIGTERM", () => {
  wss.close();
  pub?.disconnect();
  sub?.disconnect();
  process.exit(0);
});
