// What a node's outages from Redis leave unsaid: what it could not tell the others while it had lost Redis
// (told once it is back, as a `missed` message, or as a reconcile of everything past MISSED_MAX ids), how
// long it could not hear them (told as a `deaf` notice), and the presence changes it relayed lately (told
// again to a node back from being deaf). Fanout keeps one and relays what it answers.

import type { Missed } from "./relay.ts";

/**
 * Ids a node keeps of what it could not tell the others while Redis was lost; past this many it tells
 * them to look at everything instead (a reconcile of every socket on every node).
 */
export const MISSED_MAX = 10_000;
/** Presence changes a node remembers relaying, the latest per user, for a node that could not hear them. */
const PRESENCE_MEMORY = 10_000;
/**
 * Added to how long a node knew it was without Redis when it asks for the presence changes it missed: a
 * connection may be dead some time before its client says so.
 */
const DEAF_MARGIN_MS = 10_000;

const KEYS = ["conversation_ids", "user_ids", "session_ids", "presence_ids", "head_ids"] as const;

export class Outage {
  private missed: Record<keyof Missed, Set<string>> = {
    conversation_ids: new Set(),
    user_ids: new Set(),
    session_ids: new Set(),
    presence_ids: new Set(),
    head_ids: new Set(),
  };
  /** More than MISSED_MAX ids were missed (or a reconcile message was): every node looks at everything. */
  private missedAll = false;
  /** User -> when (performance.now()) this node last relayed a change of their presence; oldest first. */
  private relayedAt = new Map<string, number>();
  /** Since when (performance.now()) this node could not hear the others, until it has told them. */
  private deafSince: number | undefined;

  /** A relay the others did not get: what it would have told them ("all": look at everything). */
  miss(unsaid: Partial<Missed> | "all") {
    if (this.missedAll) return;
    if (unsaid !== "all") {
      let ids = 0;
      for (const key of KEYS) {
        for (const id of unsaid[key] ?? []) this.missed[key].add(id);
        ids += this.missed[key].size;
      }
      if (ids <= MISSED_MAX) return;
    }
    this.missedAll = true;
    for (const key of KEYS) this.missed[key].clear();
  }

  /** What to tell the others now that Redis is back, taken: everything to look at, the ids, or nothing. */
  takeMissed(): Missed | "all" | null {
    if (this.missedAll) {
      this.missedAll = false;
      return "all";
    }
    let any = false;
    const missed = {} as Missed;
    for (const key of KEYS) {
      missed[key] = [...this.missed[key]];
      this.missed[key].clear();
      any ||= missed[key].length > 0;
    }
    return any ? missed : null;
  }

  /**
   * This node could not hear the others for `downMs`: how far back they should look, in ms, since the
   * first outage not told yet.
   */
  deafFor(downMs: number): number {
    const now = performance.now();
    const since = Math.min(this.deafSince ?? now, now - downMs);
    this.deafSince = undefined;
    return Math.ceil(now - since) + DEAF_MARGIN_MS;
  }

  /** A notice of deafness for `ms` was lost on its way: its outage is told again, longer, next time. */
  deafNoticeLost(ms: number) {
    const since = performance.now() - (ms - DEAF_MARGIN_MS);
    this.deafSince = Math.min(this.deafSince ?? since, since);
  }

  /** This node relayed a change of the user's presence. */
  presenceRelayed(userId: string) {
    this.relayedAt.delete(userId);
    this.relayedAt.set(userId, performance.now());
    if (this.relayedAt.size > PRESENCE_MEMORY) {
      const oldest = this.relayedAt.keys().next().value;
      if (oldest !== undefined) this.relayedAt.delete(oldest);
    }
  }

  /** The users whose presence this node relayed a change of in the last `ms`. */
  presenceWithin(ms: number): string[] {
    const since = performance.now() - ms;
    const users: string[] = [];
    for (const [userId, at] of this.relayedAt) if (at >= since) users.push(userId);
    return users;
  }
}
