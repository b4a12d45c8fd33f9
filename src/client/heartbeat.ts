// The heartbeat of a realtime socket: a ping every heartbeat_interval (the hello's), so that the server
// does not close an idle client as silent, and a link heard nothing on for two beats (and 5 s) found dead
// even when no close comes (a sleeping laptop's Wi-Fi swallows packets and sends no FIN).

export class Heartbeat {
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastFrameAt = 0;

  constructor(
    private ping: () => void,
    /** Nothing heard for too long: the link is to be left. */
    private dead: () => void,
  ) {}

  /** A frame came on the socket. */
  heard() {
    this.lastFrameAt = Date.now();
  }

  start(seconds: number) {
    this.stop();
    const every = Math.max(1, seconds) * 1000;
    this.timer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2 * every + 5000) this.dead();
      else this.ping();
    }, every);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
