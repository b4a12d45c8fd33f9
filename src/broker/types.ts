// The scale-out port: the bytes one node's fanout sends to the others, and how many sockets a user has
// across all of them. In process by default (one node); Redis across nodes (broker/redis.ts).

export interface Broker {
  /** This node's id. A node never receives what it published itself. */
  readonly nodeId: string;
  /** Whether other nodes may be listening: when false, publishing is skipped (nothing to encode for). */
  readonly shared: boolean;
  /** Sends bytes to every other node that has joined the channel; fire and forget. */
  publish(channel: string, payload: Uint8Array): void;
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
  /** Resolves when the broker answers (readiness: a node cut off from the others should get no traffic). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
