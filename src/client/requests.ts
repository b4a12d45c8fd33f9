// The requests of a realtime connection waiting for their answers, by ref: each with its deadline, its
// frame (sent again after a reconnect when that is safe) and where that frame is (waiting for a socket,
// queued in the outbox, or written).

import type { ServerFrame } from "../realtime/frames.ts";
import { ParleyError } from "./errors.ts";

export interface Pending {
  frame: Record<string, unknown>;
  /** Message frames are idempotent (client_msg_id) and are sent again after a reconnect. */
  retry: boolean;
  /** Waiting for a socket, in the outbox, or written to the socket. */
  state: "waiting" | "queued" | "sent";
  /** Times the server refused it as rate_limited. */
  limited: number;
}

interface Entry extends Pending {
  resolve(frame: ServerFrame): void;
  reject(err: ParleyError): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Requests {
  private table = new Map<number, Entry>();

  constructor(private timeoutMs: number) {}

  /** A request under `ref`; it fails with `timeout` when no answer comes within the deadline. */
  add(ref: number, frame: Record<string, unknown>, retry: boolean): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.table.delete(ref);
        const err = new ParleyError(
          "timeout",
          `no answer to ${String(frame.type)} within ${this.timeoutMs} ms`,
        );
        reject(naming(err, frame));
      }, this.timeoutMs);
      this.table.set(ref, { resolve, reject, timer, frame, retry, state: "waiting", limited: 0 });
    });
  }

  get(ref: number): Pending | undefined {
    return this.table.get(ref);
  }

  has(ref: number): boolean {
    return this.table.has(ref);
  }

  /** Every request still waiting, in the order they were made. */
  entries(): [number, Pending][] {
    return [...this.table];
  }

  /** The answer came: an error frame fails the request with its code, anything else resolves it. */
  answer(ref: number, frame: ServerFrame) {
    const entry = this.take(ref);
    if (!entry) return;
    if (frame.type === "error") entry.reject(new ParleyError(frame.code, frame.message));
    else entry.resolve(frame);
  }

  /** Fails a request now, whether it waits to be sent or for its answer. */
  fail(ref: number, err: ParleyError) {
    const entry = this.take(ref);
    if (entry) entry.reject(naming(err, entry.frame));
  }

  /** On a dropped socket: written requests that may not be repeated fail; the rest wait for the next one. */
  dropped(message: string) {
    for (const [ref, entry] of this.table) {
      if (entry.retry || entry.state !== "sent") entry.state = "waiting";
      else this.fail(ref, new ParleyError("closed", message));
    }
  }

  /** The connection stopped for good: every request fails with `err`. */
  failAll(err: ParleyError) {
    for (const ref of [...this.table.keys()]) this.fail(ref, err);
  }

  private take(ref: number): Entry | undefined {
    const entry = this.table.get(ref);
    if (!entry) return undefined;
    this.table.delete(ref);
    clearTimeout(entry.timer);
    return entry;
  }
}

/**
 * A message that failed without the server's answer (timeout, closed, session over) may have been stored
 * all the same: its error names its client_msg_id, with which sending it again is safe (acked, not stored
 * twice).
 */
function naming(err: ParleyError, frame: Record<string, unknown>): ParleyError {
  if (frame.type !== "message") return err;
  const details = { ...err.details, client_msg_id: frame.client_msg_id };
  return new ParleyError(err.code, err.message, err.status, details);
}

/** A frame over the largest the server reads: refused here, never sent. */
export function tooLarge(frame: Record<string, unknown>, limit: number): ParleyError {
  return new ParleyError(
    "payload_too_large",
    `the ${String(frame.type)} frame is over the ${limit} bytes the server reads`,
  );
}
