// Who is online across nodes, as this node accounts for it: each socket's place in the broker's count of
// its user's sockets, the offline write a user's last close makes (once, by one node), the users this node
// let go of while counts could not be trusted (Redis lost), and those it holds whom other nodes wrote offline
// while its counts were missing from Redis. What the store refuses is tried again as the gateway tends.

import type { Broker } from "../broker/types.ts";
import { inChunks } from "../lib/chunks.ts";
import type { UsersRepo } from "../store/types.ts";
import type { Connections, SocketState } from "./connections.ts";
import type { Presence } from "./presence.ts";

export class Attendance {
  /** Users let go of while counts were not trusted: whether they are offline is decided once they are. */
  private unsettled = new Set<string>();
  /** This node's counts were missing from Redis: the presence of the users it holds is looked at again. */
  private heldOwed = false;
  /** Redis lost what the nodes keep there: every user the store shows online is settled. */
  private everyoneOwed = false;
  private stopped = false;

  constructor(
    private deps: {
      broker: Broker;
      connections: Connections;
      presence: Presence;
      users: Pick<UsersRepo, "notOffline">;
    },
  ) {}

  /**
   * Gives back the place a socket (or a refused upgrade) held in the count across nodes, once: the user's
   * last socket on any node makes them offline. Presence follows the count: a first socket that closes
   * before its hello never showed the user, and shows them if other sockets (counted after it, so not
   * first) are still there.
   */
  async givePlace(state: SocketState): Promise<void> {
    const { broker, presence } = this.deps;
    if (!state.counted) return;
    state.counted = false;
    const userId = state.user_id;
    const owed = state.announce;
    state.announce = false;
    // A count read while counts are not trusted (Redis lost, or just back and the other nodes' counts not
    // yet) writes nobody offline: the user is settled once they are. Nor does one that never came back.
    const trusted = broker.settled;
    let left: number;
    try {
      left = await broker.countSockets(userId, -1);
    } catch {
      // Redis may have counted it, and claimed the offline write for this node, with the reply lost on the
      // way: settle() asks again, and the broker hands this node back a claim of its own.
      this.defer(userId);
      return;
    }
    try {
      if (left === 0) {
        // As the count was claimed: a claim made while trusted is this node's to write (the broker made
        // it for this node alone), whatever happened to the trust since. A first socket that closes before
        // its hello finds the user offline still and writes nothing, unless another node showed them.
        if (trusted) await this.writeOffline(userId);
        else this.defer(userId);
      } else if (owed) await presence.show(userId);
    } catch {
      // The store refused the write (a full disk): tried again as the gateway tends. Offline is settled
      // (the broker hands this node back its own claim); online, with the users held here.
      if (left === 0) this.defer(userId);
      else this.recheckHeld();
    }
  }

  /**
   * Writes offline a user whose offline write this node was handed, and says it made it. Their first socket
   * on another node may have shown them before this write landed: the count decides after it.
   */
  private async writeOffline(userId: string) {
    const { broker, presence } = this.deps;
    await presence.offline(userId);
    broker.offlineWritten([userId]);
    if (broker.shared) await this.followCount(userId);
  }

  /**
   * After a presence write that may have raced a socket opening or closing on another node (a store a round
   * trip away, each side reading the other's write too early): the count across nodes, read after it,
   * decides: shown with a socket somewhere, offline with none. A count that cannot be read leaves it (their
   * next connection, or last close, decides).
   */
  async followCount(userId: string) {
    const { broker, presence } = this.deps;
    const sockets = await broker.countSockets(userId, 0).catch(() => undefined);
    if (sockets === undefined) return;
    await (sockets > 0 ? presence.show(userId) : presence.offline(userId));
  }

  /**
   * Users whose last sockets a dead node held: offline, unless they came back meanwhile. The sweep hands
   * them out once: one that cannot be counted or written now is settled later, like a user let go of while
   * counts were not trusted, rather than left online for good.
   */
  async sweepDeadNodes(): Promise<void> {
    const { broker } = this.deps;
    for (const userId of await broker.sweepDeadNodes()) {
      try {
        if ((await broker.countSockets(userId, 0)) === 0) await this.writeOffline(userId);
        else broker.offlineWritten([userId]);
      } catch {
        this.defer(userId);
      }
    }
  }

  /** The user's socket here was let go of while counts were not trusted: their presence waits for settle(). */
  defer(userId: string) {
    this.unsettled.add(userId);
  }

  /**
   * This node's counts were missing from Redis for a while (it lost Redis, or stalled past its heartbeat):
   * the next settle() looks again at the presence of the users it holds.
   */
  recheckHeld() {
    this.heldOwed = true;
  }

  /**
   * Redis lost what the nodes keep there (broker.onEmptied): the users of a node that died meanwhile are in
   * no list a sweep could find, and would be shown online for good. Every user the store shows online is
   * settled as one let go of: written offline, by one node, unless a node holds a socket of theirs once
   * counts are trusted (the other nodes have put theirs back).
   */
  settleEveryone() {
    this.everyoneOwed = true;
  }

  /**
   * Once counts are trusted: the deferred users with no socket on any node are written offline, each by
   * one node of the cluster, and (after recheckHeld) the users this node holds are written back online.
   * What it could not do waits for the next call (the gateway's tending).
   */
  async settle(): Promise<void> {
    if (!this.deps.broker.settled) return;
    let failed: { err: unknown } | undefined;
    if (this.everyoneOwed) {
      this.everyoneOwed = false;
      try {
        for (const userId of await this.deps.users.notOffline()) this.defer(userId);
      } catch (err) {
        this.everyoneOwed = true;
        failed = { err };
      }
    }
    const results = await Promise.allSettled([this.settleLetGo(), this.writeBackHeld()]);
    for (const result of results) if (result.status === "rejected") throw result.reason;
    if (failed) throw failed.err;
  }

  private async settleLetGo(): Promise<void> {
    const { broker, connections } = this.deps;
    if (this.unsettled.size === 0) return;
    // A user with a socket here is online; the close of their last one decides again.
    const users = [...this.unsettled].filter((u) => connections.ofUser(u).size === 0);
    this.unsettled.clear();
    let gone: string[];
    try {
      gone = await broker.settle(users);
    } catch (err) {
      for (const u of users) this.unsettled.add(u);
      throw err;
    }
    // Each of them is this node's to write now (the broker marked it so): one the store refuses is
    // deferred again, and handed back to this node by the next settle.
    await inChunks(gone, (userId) =>
      this.writeOffline(userId).catch((err: unknown) => {
        this.unsettled.add(userId);
        throw err;
      }),
    );
  }

  /**
   * While this node's counts were missing from Redis, another node may have found it dead and written
   * its users offline (its sweep), or written offline a user whose last socket elsewhere closed: those
   * with a socket here whom the store says are offline are written back to the status they chose (online
   * unless they chose another; one who chose offline stays so). A first socket still to say hello shows
   * its user's status itself.
   */
  private async writeBackHeld(): Promise<void> {
    if (!this.heldOwed) return;
    this.heldOwed = false;
    const { connections, presence } = this.deps;
    const users = new Set<string>();
    for (const ws of connections.all)
      if (ws.data.kind === "user" && !ws.data.announce) users.add(ws.data.user_id);
    try {
      await inChunks([...users], async (userId) => {
        // One whose last socket here closed meanwhile was written as it closed (after this, in turn).
        if (this.stopped || connections.ofUser(userId).size === 0) return;
        await presence.show(userId);
      });
    } catch (err) {
      // Looked at again whole at the next call: those written back already read online and stay as they are.
      this.heldOwed = true;
      throw err;
    }
  }

  stop() {
    this.stopped = true;
  }
}
