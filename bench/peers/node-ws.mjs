// A peer: Node.js with the `ws` package, rooms as Sets and a send loop, as users of ws write it. Same wire
// contract as the ceiling: `?rooms=a,b` to join, a msgpack {type: "message", conversation_id} is relayed as is.

import { Packr } from "msgpackr";
import { WebSocketServer } from "ws";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
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
    if (!rooms.has(room)) rooms.set(room, new Set());
    rooms.get(room).add(ws);
  }
  ws.on("message", (data, isBinary) => {
    const frame = packr.unpack(data);
    const members = typeof frame?.conversation_id === "string" ? rooms.get(frame.conversation_id) : undefined;
    if (!members) return;
    for (const other of members)
      if (other !== ws && other.readyState === 1) other.send(data, { binary: isBinary });
  });
  ws.on("close", () => {
    for (const room of joined) rooms.get(room)?.delete(ws);
  });
});
wss.on("listening", () => console.log(JSON.stringify({ port: wss.address().port })));
process.on("SIGTERM", () => {
  wss.close();
  process.exit(0);
});
