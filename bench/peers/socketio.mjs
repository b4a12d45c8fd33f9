// A peer: a Socket.IO 4 server on Node.js. Clients join rooms by the `rooms` handshake query and emit
// "message" {conversation_id, ...}; the server relays it to the room with socket.to(room).emit (sender excluded,
// like Bun's ws.publish and the ws peer).

import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });
io.on("connection", (socket) => {
  const joined = String(socket.handshake.query.rooms ?? "")
    .split(",")
    .filter(Boolean);
  for (const room of joined) socket.join(room);
  socket.on("message", (frame) => {
    if (typeof frame?.conversation_id === "string") socket.to(frame.conversation_id).emit("message", frame);
  });
});
http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () =>
  console.log(JSON.stringify({ port: http.address().port })),
);
process.on("SIGTERM", () => {
  io.close();
  process.exit(0);
});
