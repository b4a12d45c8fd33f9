// When a realtime connection tries again: delays doubling from minMs to maxMs, each with jitter, that start
// again from minMs once a connection has stayed up resetAfterMs or had a request answered, not at every
// hello (a server that closes each connection soon after it opens is not met with a reconnect every minMs).

import type { RealtimeOptions } from "./realtime.ts";

export class Backoff {
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private opts: RealtimeOptions) {}

  /** A reconnect is waiting for its time. */
  get waiting(): boolean {
    return this.timer !== undefined;
  }

  /** Runs `reconnect` after the next delay. */
  schedule(reconnect: () => void) {
    const min = this.opts.backoff?.minMs ?? 500;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    const ceiling = Math.min(max, min * 2 ** this.attempt);
    this.attempt++;
    // Equal jitter: half fixed, half random, so a server restart is not met by every client at once.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      reconnect();
    }, delay);
  }

  /** The reconnect waiting for its time, if any, does not come. */
  cancel() {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The next delay is minMs again. */
  reset() {
    this.attempt = 0;
  }

  /** A connection that said hello at `upSince` closed: it resets the delays if it stayed up long enough. */
  closedAfter(upSince: number) {
    if (Date.now() - upSince >= (this.opts.backoff?.resetAfterMs ?? 10_000)) this.attempt = 0;
  }
}
