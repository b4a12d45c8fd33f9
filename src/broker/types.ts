// The scale-out port: the bytes one node's fanout sends to the others, and how many sockets a user has
// across all of them. In process by default (one node); Redis across nodes (broker/redis.ts).

export interface Broker {
  /** This node's id. A node never receives what it published itself. */
  readonly nodeId: string;
  /** Whether other nodes may be listening: when false, publishing is skipped (nothing to encode for). */
  readonly shared: boolean;
  /**
   * Sends bytes to every other node that has joined the channel; fire and forget. False when they were
   * dropped instead (Redis out of reach: nothing is queued); bytes lost on the way after (the connection
   * dropped with them in flight) go to the onLost handler.
   */
  publish(channel: string, payload: Uint8Array): boolean;
  /** Where published bytes lost in flight go (one handler per node: its fanout). */
  onLost(handler: (channel: string, payload: Uint8Array) => void): void;
  /** Starts receiving the channels; resolves once anything published after that will arrive. */
  join(channels: readonly string[]): Promise<void>;
  /** Stops receiving the channels. */
  leave(channels: readonly string[]): void;
  /** The channels this node receives. */
  readonly joined: ReadonlySet<string>;
  /** Where other nodes' messages go (one handler per node: its fanout). */
  onMessage(handler: (channel: string, payload: Uint8Array) => void): void;
  /**
   * Adds delta (+1 when an upgrade is accepted, -1 when it fails or its socket closes, 0 to ask) to the
   * user's socket count and returns the count across every node: 1 after a +1 means the user's first
   * socket, 0 after a -1 that they have none left.
   */
  countSockets(userId: string, delta: 1 | -1 | 0): Promise<number>;
  /**
   * Users whose last sockets were on a node that died without closing them: each is returned once, to one
   * caller in the whole cluster, which writes them offline.
   */
  sweepDeadNodes(): Promise<string[]>;
  /**
   * False from the moment the broker loses Redis (or finds that its heartbeat had expired) until counts can
   * be trusted again: this node's are back in Redis and the other nodes have had a moment to put theirs
   * back. A count of 0 read meanwhile makes nobody offline: the node hands such users to settle() once this
   * is true again.
   */
  readonly settled: boolean;
  /**
   * Of users a node let go of while counts were not trusted (or whose count it did not hear back), those
   * with no socket on any node now; each is returned to one node in the whole cluster, which writes them
   * offline. A node that asks again about a user it was handed (its reply lost) is handed them again.
   */
  settle(userIds: readonly string[]): Promise<string[]>;
  /**
   * This node wrote offline users whose offline write it was handed (by a count that left them no socket,
   * by settle() or by sweepDeadNodes()): should it die now, no sweep hands them on. Until it says so, one
   * does, and a node that dies between the hand-over and the write leaves nobody online for good. Told in
   * the background; a second offline write of a user is harmless.
   */
  offlineWritten(userIds: readonly string[]): void;
  /**
   * Runs once the broker has Redis again after losing it (this node's counts are back), with how long it
   * was without it: what other nodes said meanwhile was lost, and the node looks again at what it holds.
   */
  onReconnect(listener: (downMs: number) => void): void;
  /**
   * Runs each time counts are trusted again (settled turns true) after this node's were missing from Redis:
   * it lost Redis, or stalled past its heartbeat. Other nodes may have written its users offline meanwhile.
   */
  onSettled(listener: () => void): void;
  /**
   * Runs when this node has found Redis without what the nodes keep there (it restarted empty, or was
   * flushed; or this is the deployment's first node), once in the cluster, and every live node has had time
   * to put its own counts back: the users a node that died meanwhile held are in no list a sweep could find.
   * Told at once to a listener that comes after.
   */
  onEmptied(listener: () => void): void;
  /** Resolves when the broker answers (readiness: a node cut off from the others should get no traffic). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
