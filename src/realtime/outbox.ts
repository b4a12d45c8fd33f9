// Replies to a socket, corked: what is sent to one socket while a run of microtasks lasts leaves in one
// write at its end, in the order it was made, or sooner when a catch-up writes a chunk of itself out.

import { encode } from "./codec.ts";
import type { Socket } from "./connections.ts";
import type { ServerFrame } from "./protocol.ts";

/** Replies waiting for the end of this run of microtasks, by socket, in the order they were made. */
let outbox = new Map<Socket, (Uint8Array | string)[]>();

/**
 * Replies to a socket leave together: the ones made while this run of microtasks lasts go out corked, in
 * one write. Outside Bun's own handlers (every reply after an await) each ws.send is a write of its own,
 * and a group commit resolves hundreds of sends at once: a client with many messages in flight got one
 * write per ack. A send also first flushes what was published to the socket meanwhile (the event of the
 * message being acked), so that still arrives before its ack, in the same write.
 */
export function send(ws: Socket, frame: ServerFrame) {
  sendEncoded(ws, encode(frame, ws.data.encoding));
}

/** A frame already encoded in the socket's encoding (a replayed event), in line with the replies. */
export function sendEncoded(ws: Socket, bytes: Uint8Array | string) {
  const waiting = outbox.get(ws);
  if (waiting) {
    waiting.push(bytes);
    return;
  }
  if (outbox.size === 0) queueMicrotask(flushReplies);
  outbox.set(ws, [bytes]);
}

/**
 * Writes what waits for this socket now, in one cork, rather than at the end of the run of microtasks
 * (a flush already queued finds nothing of it). A catch-up does, before it looks at the socket's buffer.
 */
export function flush(ws: Socket) {
  const frames = outbox.get(ws);
  if (!frames) return;
  outbox.delete(ws);
  write(ws, frames);
}

function flushReplies() {
  // Swapped first: anything sent while these are written waits for a flush of its own.
  const due = outbox;
  outbox = new Map();
  for (const [ws, frames] of due) write(ws, frames);
}

function write(ws: Socket, frames: (Uint8Array | string)[]) {
  ws.cork(() => {
    for (const bytes of frames) ws.send(bytes);
  });
}
