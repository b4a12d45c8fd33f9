// The frames on their way to one socket, paced under the server's frame rate (its hello's rate_per_second
// and rate_burst): a token bucket a little smaller and slower than the server's, so that a queue flushed
// at a reconnect or a burst of sends is not refused as rate_limited and then closed as a flood (4002).

/** Shares of the server's rate and burst the client allows itself: frames can arrive bunched together. */
const RATE_SHARE = 0.9;
const BURST_SHARE = 0.75;

export interface Queued {
  data: Uint8Array | string;
  bytes: number;
  /** The request it is, if any. */
  ref?: number;
}

export class Outbox {
  private queue: Queued[] = [];
  private rate = Number.POSITIVE_INFINITY;
  /** Frames it lets out at once (the server's burst, a little smaller); unknown before a hello: no bound. */
  capacity = Number.POSITIVE_INFINITY;
  private tokens = Number.POSITIVE_INFINITY;
  private refilledAt = 0;
  private holdUntil = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    /** Writes a frame to the socket. */
    private write: (frame: Queued) => void,
    /** Whether a request still wants its frame sent (it may have timed out while queued). */
    private wanted: (ref: number) => boolean,
  ) {}

  /** The server's limits for this socket (none: no pacing); its bucket starts full. */
  limit(perSecond: number | undefined, burst: number | undefined) {
    const known = typeof perSecond === "number" && perSecond > 0 && typeof burst === "number" && burst > 0;
    this.rate = known ? perSecond * RATE_SHARE : Number.POSITIVE_INFINITY;
    this.capacity = known ? Math.max(1, Math.floor(burst * BURST_SHARE)) : Number.POSITIVE_INFINITY;
    this.tokens = this.capacity;
    this.refilledAt = Date.now();
    this.holdUntil = 0;
  }

  /** The time one token takes to come back, at least 50 ms: the base of the retries' delays. */
  get interval(): number {
    return Math.max(50, 1000 / this.rate);
  }

  push(frame: Queued) {
    // A request sent again (refused as rate_limited) goes back before the requests made after it that are
    // still queued, so that messages are stored in the order they were sent (one written before the refusal
    // came back may still pass it).
    let at = this.queue.length;
    if (frame.ref !== undefined)
      for (let before = this.queue[at - 1]?.ref; before !== undefined && before > frame.ref; ) {
        at--;
        before = this.queue[at - 1]?.ref;
      }
    this.queue.splice(at, 0, frame);
    this.drain();
  }

  /** The server refused a frame as rate_limited: nothing more is written for `ms`. */
  hold(ms: number) {
    this.holdUntil = Math.max(this.holdUntil, Date.now() + ms);
    this.tokens = Math.min(this.tokens, 0);
    this.refilledAt = Date.now();
    if (this.queue.length > 0) this.schedule(this.holdUntil - Date.now());
  }

  /** The socket is gone: the frames not written are dropped (requests among them are sent again later). */
  clear() {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.limit(undefined, undefined);
  }

  private drain() {
    while (this.queue.length > 0) {
      const now = Date.now();
      if (now < this.holdUntil) return this.schedule(this.holdUntil - now);
      const head = this.queue[0] as Queued;
      if (head.ref !== undefined && !this.wanted(head.ref)) {
        this.queue.shift();
        continue;
      }
      if (this.rate !== Number.POSITIVE_INFINITY) {
        this.tokens = Math.min(this.capacity, this.tokens + ((now - this.refilledAt) / 1000) * this.rate);
        this.refilledAt = now;
        if (this.tokens < 1) return this.schedule(((1 - this.tokens) / this.rate) * 1000);
        this.tokens -= 1;
      }
      this.queue.shift();
      this.write(head);
    }
  }

  private schedule(ms: number) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain();
    }, Math.ceil(ms));
  }
}
