// A large catch-up paced by its socket's drain. A resume may owe a client far more than the
// WS_BACKPRESSURE_LIMIT at which the sweep closes a socket as a slow consumer (1000 conversations of up to
// RESUME_MAX changes each): written at once, it closed any client that could not read it all within a sweep,
// which reconnected, resumed, and was closed again. So a catch-up looks at the socket's buffer after each
// chunk it writes, and past a quarter of the limit waits for the client to read before it writes more. A
// client that takes nothing for WS_DRAIN_TIMEOUT seconds is a slow consumer all the same: the sweep closes it.

import type { Socket } from "./connections.ts";

/** ServerWebSocket.readyState of an open socket (as WebSocket.OPEN). */
export const OPEN = 1;

interface Wait {
  done: Promise<void>;
  wake: () => void;
  /** When the socket last took some of its queue (or the wait began). */
  movedAt: number;
}

export class Pacer {
  /**
   * Bytes of a catch-up written between two looks at the socket's buffer. Small enough that a chunk over
   * `high` stays well under the limit, with room left for the live frames published meanwhile.
   */
  readonly chunk: number;
  /** Buffered bytes past which a catch-up waits for its socket to drain. */
  readonly high: number;
  /**
   * The buffered bytes it waits for the socket to drain down to: a chunk's worth under `high`, so that a
   * client reading steadily wakes it once a chunk, not at every write the kernel takes.
   */
  readonly low: number;
  /** The sockets a catch-up waits on (one at most per socket: a socket's resumes take turns). */
  private waits = new Map<Socket, Wait>();

  constructor(
    backpressureLimit: number,
    private drainTimeoutMs: number,
  ) {
    if (!(backpressureLimit >= 8))
      throw new Error(`pacer: backpressure limit ${backpressureLimit} under 8 bytes`);
    if (!(drainTimeoutMs > 0)) throw new Error(`pacer: drain timeout ${drainTimeoutMs} ms is not positive`);
    this.high = Math.floor(backpressureLimit / 4);
    this.chunk = Math.floor(backpressureLimit / 8);
    this.low = this.high - this.chunk;
  }

  /**
   * A chunk is out (the caller flushed it): whether the socket is past `high`, and the catch-up is to wait
   * (`drain`) before it writes more. A closed socket is past it too: waiting on it ends at once, with false.
   */
  crowded(ws: Socket): boolean {
    return ws.readyState !== OPEN || ws.getBufferedAmount() > this.high;
  }

  /** Resolves once the socket has drained to `low` (true) or closed (false). */
  async drain(ws: Socket): Promise<boolean> {
    if (ws.readyState !== OPEN) return false;
    let wait = this.waits.get(ws);
    if (!wait) {
      let wake = () => {};
      const done = new Promise<void>((resolve) => {
        wake = resolve;
      });
      wait = { done, wake, movedAt: Date.now() };
      this.waits.set(ws, wait);
    }
    await wait.done;
    return ws.readyState === OPEN;
  }

  /**
   * Bun's drain handler: the socket could write again, and took some of its queue. It wakes the catch-up
   * once the queue is down to `low`.
   */
  drained(ws: Socket) {
    const wait = this.waits.get(ws);
    if (!wait) return;
    wait.movedAt = Date.now();
    if (ws.getBufferedAmount() <= this.low) this.end(ws, wait);
  }

  /** The socket closed: its catch-up wakes, to find it closed and stop. */
  closed(ws: Socket) {
    const wait = this.waits.get(ws);
    if (wait) this.end(ws, wait);
  }

  /** The sockets waited on that have taken nothing for the drain timeout: slow consumers. */
  stalled(now: number): Socket[] {
    const out: Socket[] = [];
    for (const [ws, wait] of this.waits) if (now - wait.movedAt > this.drainTimeoutMs) out.push(ws);
    return out;
  }

  /** How many sockets a catch-up waits on. */
  get waiting(): number {
    return this.waits.size;
  }

  private end(ws: Socket, wait: Wait) {
    this.waits.delete(ws);
    wait.wake();
  }
}
