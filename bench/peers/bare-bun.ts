// The ceiling: bare Bun.serve WebSocket pub/sub with no auth, validation or storage. A client joins rooms by
// `?rooms=a,b`; a msgpack frame {type: "message", conversation_id, ...} is published as is to that room.

import { Packr } from "msgpackr";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

const server = Bun.serve<{ rooms: string[] }>({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  fetch(req, srv) {
    const rooms = (new URL(req.url).searchParams.get("rooms") ?? "").split(",").filter(Boolean);
    if (srv.upgrade(req, { data: { rooms } })) return;
    return new Response("websocket only", { status: 426 });
  },
  websocket: {
    open(ws) {
      for (const room of ws.data.rooms) ws.subscribe(room);
    },
    message(ws, data) {
      const frame = packr.unpack(typeof data === "string" ? Buffer.from(data) : data) as {
        conversation_id?: unknown;
      };
      if (typeof frame?.conversation_id === "string") ws.publish(frame.conversation_id, data);
    },
  },
});

console.log(JSON.stringify({ port: server.port }));
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
