// The ceiling: bare Bun.serve WebSocket pub/sub with no auth, validation or storage. A client joins rooms by
// `?rooms=a,b`; a msgpack frame {type: "message", conversation_id, ...} is published as is to that room.
// With REDIS_URL (cross-node) it is one node of several: a frame also goes to Redis on the room's channel
// (REDIS_PREFIX:room), prefixed with this node's id so the node skips its own; a node listens to a room's
// channel while it has members there and publishes what other nodes send to its local subscribers.

import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { Packr } from "msgpackr";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const NODE_ID = randomBytes(8);
const channelPrefix = `${process.env.REDIS_PREFIX ?? "bare-bun"}:`;
const redisUrl = process.env.REDIS_URL;
const pub = redisUrl ? new Redis(redisUrl) : undefined;
const sub = redisUrl ? new Redis(redisUrl) : undefined;
/** room -> members on this node (cross-node only): the node listens to a room's channel while it has some. */
const local = new Map<string, number>();

const server = Bun.serve<{ rooms: string[] }>({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  // Several processes on one port (the connections scenario past one process's open-file limit).
  reusePort: process.env.REUSE_PORT === "true",
  fetch(req, srv) {
    const rooms = (new URL(req.url).searchParams.get("rooms") ?? "").split(",").filter(Boolean);
    if (srv.upgrade(req, { data: { rooms } })) return;
    return new Response("websocket only", { status: 426 });
  },
  websocket: {
    open(ws) {
      for (const room of ws.data.rooms) {
        ws.subscribe(room);
        if (!sub) continue;
        const n = local.get(room) ?? 0;
        local.set(room, n + 1);
        if (n === 0) void sub.subscribe(channelPrefix + room);
      }
    },
    message(ws, data) {
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      const frame = packr.unpack(bytes) as { conversation_id?: unknown };
      if (typeof frame?.conversation_id !== "string") return;
      ws.publish(frame.conversation_id, data);
      pub?.publish(channelPrefix + frame.conversation_id, Buffer.concat([NODE_ID, bytes]));
    },
    close(ws) {
      if (!sub) return;
      for (const room of ws.data.rooms) {
        const n = (local.get(room) ?? 1) - 1;
        if (n > 0) local.set(room, n);
        else {
          local.delete(room);
          void sub.unsubscribe(channelPrefix + room);
        }
      }
    },
  },
});

sub?.on("messageBuffer", (channel: Buffer, message: Buffer) => {
  if (message.subarray(0, NODE_ID.length).equals(NODE_ID)) return;
  server.publish(channel.subarray(channelPrefix.length).toString(), message.subarray(NODE_ID.length));
});

if (pub && sub) await Promise.all([pub.ping(), sub.ping()]);
console.log(JSON.stringify({ port: server.port }));
process.on("SIGTERM", () => {
  server.stop(true);
  pub?.disconnect();
  sub?.disconnect();
  process.exit(0);
});
