// Presence: a user's first socket shows the status they chose (online unless they chose another), the last
// one closing makes them offline with last_seen; presence_update (or PUT /api/users/{id}) chooses a status,
// kept in the store across their connections. Changes go to every user who shares a conversation.

import { type Clock, isoOrNull } from "../lib/clock.ts";
import type { Store, UserRecord, UserStatus } from "../store/types.ts";
import { type Fanout, topics } from "./fanout.ts";

export class Presence {
  /**
   * Each user's presence work on this node, one after the other: a last close's offline write reads the
   * store after the show or choice before it has written (else, reading them offline still, it would
   * leave them shown with no socket).
   */
  private queues = new Map<string, Promise<unknown>>();
  /**
   * Users whose presence was written but whose peers could not be looked up to be told (the store failed
   * between the two): told as the store has it when the gateway next tends (retellUntold), else their peers
   * would show them as they were (online with no socket) until their next change.
   */
  private untold = new Set<string>();

  constructor(
    private store: Store,
    private clock: Clock,
    private fanout: Fanout,
  ) {}

  /**
   * A status the user chose through one of their sockets (presence_update): kept as their choice, and
   * shown at once (they are connected).
   */
  choose(userId: string, status: UserStatus): Promise<UserRecord | null> {
    return this.inTurn(userId, () => this.set(userId, status, status));
  }

  /**
   * The user is connected (their first socket, or written offline meanwhile by another node): their status
   * becomes the one they chose, "online" unless they chose another. One who chose offline stays so, their
   * last_seen untouched and nobody told. Answers the user when their status changed.
   */
  show(userId: string): Promise<UserRecord | null> {
    // In one step in the store: a choice made meanwhile on another node is what is shown, not undone.
    return this.inTurn(userId, async () => {
      const user = await this.store.users.showChosen(userId, this.clock.now());
      if (user) await this.told(user);
      return user;
    });
  }

  /**
   * The user's last socket closed: offline, last seen now. One offline already (who chose to appear
   * offline, or written so by another node) is left as they are: their last_seen does not move and nobody
   * is told, so a user who connected unseen leaves unseen.
   */
  offline(userId: string): Promise<void> {
    return this.inTurn(userId, async () => {
      const user = await this.store.users.byId(userId);
      if (!user || user.status === "offline") return;
      await this.set(userId, "offline");
    });
  }

  /** Runs `work` once the user's presence work before it here has settled. */
  private inTurn<T>(userId: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(userId);
    const mine = before ? before.then(work, work) : work();
    this.queues.set(userId, mine);
    const done = () => {
      if (this.queues.get(userId) === mine) this.queues.delete(userId);
    };
    mine.then(done, done);
    return mine;
  }

  /**
   * The user's status as their peers see it, and their choice when `chosen` is given. updated_at stays:
   * anyone may read it, and it would tell them when the user comes and goes.
   */
  private async set(userId: string, status: UserStatus, chosen?: UserStatus): Promise<UserRecord | null> {
    const now = this.clock.now();
    const user = await this.store.users.update(userId, {
      status,
      ...(chosen === undefined ? {} : { chosen_status: chosen }),
      ...(status === "offline" ? { last_seen: now } : {}),
    });
    if (user) await this.told(user);
    return user;
  }

  /** Tells the user's peers the presence the store answered for their write (not what was meant to be). */
  private async told(user: UserRecord) {
    try {
      await this.tell(user.id, user.status, isoOrNull(user.last_seen));
    } catch (err) {
      this.untold.add(user.id);
      throw err;
    }
  }

  /**
   * Tells the peers of the users whose presence changes could not be told, as the store has it now: each in
   * their turn, so that a change of theirs made here meanwhile is not overtaken by what was read before it.
   */
  async retellUntold(): Promise<void> {
    const users = [...this.untold];
    this.untold.clear();
    for (const [i, userId] of users.entries()) {
      try {
        await this.inTurn(userId, () => this.retell([userId], { everywhere: true }));
      } catch (err) {
        // Those not told yet, this one among them, wait for the next time.
        for (const left of users.slice(i)) this.untold.add(left);
        throw err;
      }
    }
  }

  /**
   * Changes of these users' presence went unheard (a node had lost Redis for a while): their peers are
   * told it again as the store has it now, those with sockets here (the node that could not relay them
   * is back), or `everywhere` (one that could not hear them is).
   */
  async retell(userIds: readonly string[], { everywhere = false } = {}): Promise<void> {
    for (const userId of userIds) {
      const user = await this.store.users.byId(userId);
      if (!user) continue;
      const frame = presenceFrame(userId, user.status, isoOrNull(user.last_seen));
      const peers = await this.store.conversations.peersOf(userId);
      if (everywhere) this.fanout.toPeers(userId, peers, frame);
      else this.fanout.publishEach(peers, topics.user, frame);
    }
  }

  /** Everyone who shares a conversation with the user, the user included (their other devices). */
  private async tell(userId: string, status: UserStatus, lastSeen: string | null) {
    const frame = presenceFrame(userId, status, lastSeen);
    this.fanout.toPeers(userId, await this.store.conversations.peersOf(userId), frame);
  }
}

export const presenceFrame = (userId: string, status: UserStatus, lastSeen: string | null) =>
  ({ type: "presence", user_id: userId, status, last_seen: lastSeen }) as const;
