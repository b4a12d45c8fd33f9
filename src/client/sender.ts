// What a realtime connection writes: requests, answered by ref and sent once the server has said hello
// (again after a reconnect when that is safe), and frames with no answer (typing, ping, resume). All stay
// within the limits the hello gives: size (max_payload, or less once a 1009 close showed that the server
// reads less) and rate (the outbox's pacing); a request refused as rate_limited is sent again later.

import type { ServerFrame } from "../realtime/frames.ts";
import { ParleyError } from "./errors.ts";
import type { Hello, Link } from "./link.ts";
import { Outbox, type Queued } from "./outbox.ts";
import { Requests, tooLarge } from "./requests.ts";
import { byteSize, encodeFrame } from "./wire.ts";

/** A request refused as rate_limited is sent again this many times (after growing pauses) before failing. */
const RATE_RETRIES = 5;
/** readyState of an open socket, in every WebSocket (the global one may not exist: Node.js 20). */
const OPEN = 1;

export class Sender {
  readonly pending: Requests;
  private nextRef = 1;
  /** The largest frame the server reads (its hello's max_payload), and a bound a 1009 close taught us. */
  private maxPayload = Number.POSITIVE_INFINITY;
  private learnedMax = Number.POSITIVE_INFINITY;
  /** The largest frame written on the current socket, and the request it was (for a 1009 close). */
  private largest: { bytes: number; ref?: number } = { bytes: 0 };
  private outbox = new Outbox(
    (frame) => this.write(frame),
    (ref) => this.pending.has(ref),
  );

  constructor(
    private link: Link,
    timeoutMs: number,
  ) {
    this.pending = new Requests(timeoutMs);
  }

  /** A ref of ours for a frame that is not a request (a resume). */
  ref(): number {
    return this.nextRef++;
  }

  request(frame: Record<string, unknown>, retry = false): Promise<ServerFrame> {
    if (this.link.stopped)
      return Promise.reject(this.link.endReason ?? new ParleyError("closed", "the connection is closed"));
    const ref = this.nextRef++;
    const answered = this.pending.add(ref, { ...frame, ref }, retry);
    // Before hello the frame waits; flush() sends it once the server is ready.
    if (this.link.connected) this.sendPending(ref);
    return answered;
  }

  /** An answer to `ref`: true when it was a request of ours. */
  settle(ref: unknown, frame: ServerFrame): boolean {
    if (typeof ref !== "number") return false;
    const pending = this.pending.get(ref);
    if (!pending) return false;
    if (frame.type === "error" && frame.code === "rate_limited" && pending.limited < RATE_RETRIES) {
      // Refused before the server did anything with it: sent again once its bucket has had time to refill.
      pending.limited++;
      pending.state = "waiting";
      this.outbox.hold(this.outbox.interval * 2 ** (pending.limited - 1));
      this.sendPending(ref);
      return true;
    }
    if (frame.type !== "error") this.link.answered();
    this.pending.answer(ref, frame);
    return true;
  }

  /** A new socket said hello: its limits. */
  hello(frame: Hello) {
    if (typeof frame.max_payload === "number" && frame.max_payload > 0) this.maxPayload = frame.max_payload;
    this.outbox.limit(frame.rate_per_second, frame.rate_burst);
  }

  /** Frames the server takes at once (its WS_RATE_BURST, a little smaller), as the last hello said. */
  get burst(): number {
    return this.outbox.capacity;
  }

  /** The requests waiting for a socket go out on this one. */
  flush() {
    for (const [ref, pending] of this.pending.entries())
      if (pending.state === "waiting") this.sendPending(ref);
  }

  /** The socket is gone: the frames not written go with it (requests among them are sent again later). */
  left() {
    this.outbox.clear();
    this.largest = { bytes: 0 };
  }

  /**
   * Queues a frame for the open socket (`ref`: the request it is), paced under the server's frame rate; one
   * over the server's size limit is not queued (it would close the socket).
   */
  transmit(frame: Record<string, unknown>, ref?: number): "queued" | "offline" | "too_large" | "unencodable" {
    const ws = this.link.socket;
    if (!ws || ws.readyState !== OPEN) return "offline";
    let data: Uint8Array | string;
    try {
      data = encodeFrame(frame, this.link.encoding);
    } catch {
      // What the app gave cannot be written in this encoding (a BigInt in JSON, a cycle).
      return "unencodable";
    }
    const bytes = byteSize(data);
    if (bytes > this.limit) return "too_large";
    this.outbox.push({ data, bytes, ref });
    return "queued";
  }

  /**
   * The server closed 1009, a frame over its limit. The largest frame written on that socket is over it too
   * (every frame the server read was under it, and the one it refused is no larger): that request fails
   * rather than being sent again at the reconnect, and no frame as large is written again.
   */
  tooLarge() {
    const { bytes, ref } = this.largest;
    if (bytes === 0) return;
    this.learnedMax = Math.min(this.learnedMax, bytes - 1);
    const pending = ref === undefined ? undefined : this.pending.get(ref);
    if (ref !== undefined && pending) this.pending.fail(ref, tooLarge(pending.frame, this.learnedMax));
  }

  /** The largest frame to write: what the server said, or less if a 1009 close showed it reads less. */
  private get limit(): number {
    return Math.min(this.maxPayload, this.learnedMax);
  }

  private sendPending(ref: number) {
    const pending = this.pending.get(ref);
    if (!pending) return;
    // Queued before it is handed over: an outbox with tokens to spare writes it at once, and marks it
    // sent (write()), which a dropped socket must see (it is not sent again unless it may be).
    const before = pending.state;
    pending.state = "queued";
    const outcome = this.transmit(pending.frame, ref);
    if (outcome === "offline") pending.state = before;
    else if (outcome === "too_large") this.pending.fail(ref, tooLarge(pending.frame, this.limit));
    else if (outcome === "unencodable") {
      const message = `the ${String(pending.frame.type)} frame cannot be written as ${this.link.encoding}`;
      this.pending.fail(ref, new ParleyError("bad_request", message));
    }
  }

  /** The outbox's turn for a frame. */
  private write(frame: Queued) {
    const ws = this.link.socket;
    if (!ws || ws.readyState !== OPEN) return;
    ws.send(frame.data);
    if (frame.bytes > this.largest.bytes) this.largest = { bytes: frame.bytes, ref: frame.ref };
    const pending = frame.ref === undefined ? undefined : this.pending.get(frame.ref);
    if (pending) pending.state = "sent";
  }
}
