// Presence: a user's first socket makes them online, the last one closing makes them offline with
// last_seen; presence_update sets a status (kept here, see chosen). Changes go to every user who shares a
// conversation.

import { type Clock, isoOrNull } from "../lib/clock.ts";
import type { Store, UserStatus } from "../store/types.ts";
import type { Fanout } from "./fanout.ts";

export class Presence {
  /**
   * The status each user with sockets here last chose through one of them (presence_update), until their
   * last socket here closes: what their presence is written back to should another node have written
   * them offline while this node's counts were missing from Redis (one who chose offline stays so).
   */
  private chosen = new Map<string, UserStatus>();

  constructor(
    private store: Store,
    private clock: Clock,
    private fanout: Fanout,
  ) {}

  /** A status the user chose (presence_update), kept while they have a socket here. */
  async choose(userId: string, status: UserStatus) {
    this.chosen.set(userId, status);
    await this.set(userId, status);
  }

  chosenBy(userId: string): UserStatus | undefined {
    return this.chosen.get(userId);
  }

  /** The user's last socket here closed. */
  forget(userId: string) {
    this.chosen.delete(userId);
  }

  async set(userId: string, status: UserStatus) {
    const now = this.clock.now();
    const user = await this.store.users.update(userId, {
      status,
      updated_at: now,
      ...(status === "offline" ? { last_seen: now } : {}),
    });
    if (!user) return;
    await this.tell(userId, status, isoOrNull(user.last_seen));
  }

  /**
   * A status written elsewhere (PUT /api/users/{id}), as presence_update's is: told to the user's peers
   * and kept as their choice while they have a socket here.
   */
  async written(userId: string, status: UserStatus, lastSeen: string | null, socketsHere: number) {
    if (socketsHere > 0) this.chosen.set(userId, status);
    await this.tell(userId, status, lastSeen);
  }

  /** Everyone who shares a conversation with the user, the user included (their other devices). */
  private async tell(userId: string, status: UserStatus, lastSeen: string | null) {
    const frame = { type: "presence" as const, user_id: userId, status, last_seen: lastSeen };
    this.fanout.toPeers(userId, await this.store.conversations.peersOf(userId), frame);
  }
}
