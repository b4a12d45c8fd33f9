// A TCP proxy in front of the test Redis, to cut a node off it while Redis keeps its data: cut() drops every
// connection and refuses new ones (each is closed as it opens) until restore(). stall() makes Redis slow
// instead: connections stay up, and what the node sends waits (what Redis sends still arrives) until
// restore().

import type { Socket, TCPSocketListener } from "bun";

interface Side {
  peer?: Socket<Side>;
  pending: Uint8Array[];
}

export interface RedisProxy {
  url: string;
  cut(): void;
  stall(): void;
  restore(): void;
  stop(): void;
}

export function redisProxy(target: string): RedisProxy {
  const { hostname, port } = new URL(target);
  const open = new Set<Socket<Side>>();
  let down = false;
  let stalled = false;
  const end = (s: Socket<Side>) => {
    open.delete(s);
    s.end();
  };
  const listener: TCPSocketListener<Side> = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        client.data = { pending: [] };
        if (down) return void client.end();
        open.add(client);
        Bun.connect<Side>({
          hostname,
          port: Number(port),
          socket: {
            open(up) {
              up.data = { peer: client, pending: [] };
              open.add(up);
              client.data.peer = up;
              if (stalled) return;
              for (const bytes of client.data.pending) up.write(bytes);
              client.data.pending = [];
            },
            data: (up, bytes) => void up.data.peer?.write(bytes),
            close: (up) => up.data.peer && end(up.data.peer),
            error: (up) => up.data.peer && end(up.data.peer),
          },
        }).catch(() => end(client));
      },
      data(client, bytes) {
        if (client.data.peer && !stalled) client.data.peer.write(bytes);
        else client.data.pending.push(new Uint8Array(bytes));
      },
      close: (client) => client.data.peer && end(client.data.peer),
      error: (client) => client.data.peer && end(client.data.peer),
    },
  });
  return {
    url: `redis://127.0.0.1:${listener.port}`,
    cut() {
      down = true;
      for (const s of [...open]) end(s);
    },
    stall() {
      stalled = true;
    },
    restore() {
      down = false;
      stalled = false;
      for (const s of open) {
        const peer = s.data.peer;
        if (!peer || s.data.pending.length === 0) continue;
        for (const bytes of s.data.pending) peer.write(bytes);
        s.data.pending = [];
      }
    },
    stop() {
      down = true;
      for (const s of [...open]) end(s);
      listener.stop(true);
    },
  };
}
