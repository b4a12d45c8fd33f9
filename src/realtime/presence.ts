// Presence: a user's first socket makes them online, the last one closing makes them offline with
// last_seen; presence_update sets a status. Changes go to every user who shares a conversation.

import { type Clock, isoOrNull } from "../lib/clock.ts";
import type { Store, UserStatus } from "../store/types.ts";
import type { Fanout } from "./fanout.ts";

export class Presence {
  constructor(
    private store: Store,
    private clock: Clock,
    private fanout: Fanout,
  ) {}

  async set(userId: string, status: UserStatus) {
    const now = this.clock.now();
    const user = await this.store.users.update(userId, {
      status,
      updated_at: now,
      ...(status === "offline" ? { last_seen: now } : {}),
    });
    if (!user) return;
    const frame = {
      type: "presence" as const,
      user_id: userId,
      status,
      last_seen: isoOrNull(user.last_seen),
    };
    // Everyone who shares a conversation with the user, the user included (their other devices).
    this.fanout.toPeers(userId, await this.store.conversations.peersOf(userId), frame);
  }
}
