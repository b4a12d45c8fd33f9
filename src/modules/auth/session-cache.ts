// Whether an access token's session is still live. Checked on every authenticated request, so the
// answer is cached for at most REVALIDATE_MS: a session revoked on any node is refused at once on the
// node that revoked it and on those the broker tells (every node, with Redis), and within that time anyway.

import type { Clock } from "../../lib/clock.ts";
import type { SessionRecord, Store } from "../../store/types.ts";

const REVALIDATE_MS = 1000;
/** last_seen_at is written at most this often per session. */
const TOUCH_EVERY_MS = 60_000;
const MAX_ENTRIES = 100_000;
/**
 * How often answers past REVALIDATE_MS are dropped. An answer older than that is read again before it is
 * used, so keeping it only costs memory: a session seen once (a socket's upgrade) stayed for good.
 */
const PURGE_EVERY_MS = 10_000;

export type SessionState = "live" | "revoked" | "expired" | "missing";
/** "here": revoked through this node; "elsewhere": another node said so (scale-out). */
export type RevokeOrigin = "here" | "elsewhere";
type RevokeListener = (sessionIds: string[], origin: RevokeOrigin) => void;

interface Entry {
  session: SessionRecord | null;
  checkedAt: number;
}

export class SessionCache {
  private entries = new Map<string, Entry>();
  private revokeListeners = new Set<RevokeListener>();
  private purgedAt = 0;
  /** Moves on every invalidate: a read that started before one must not be trusted again (it may be older). */
  private epoch = 0;

  constructor(
    private store: Store,
    private clock: Clock,
  ) {}

  async state(sessionId: string, userId: string): Promise<SessionState> {
    const now = this.clock.now();
    if (now - this.purgedAt >= PURGE_EVERY_MS) this.purge(now);
    let entry = this.entries.get(sessionId);
    if (!entry || now - entry.checkedAt >= REVALIDATE_MS) {
      const epoch = this.epoch;
      const session = await this.store.sessions.byId(sessionId);
      // Overtaken by an invalidation: answered this once, and read again next time (kept for expiresAt).
      entry = { session, checkedAt: epoch === this.epoch ? now : Number.NEGATIVE_INFINITY };
      if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
      this.entries.set(sessionId, entry);
    }
    const s = entry.session;
    if (!s || s.user_id !== userId) return "missing";
    if (s.revoked_at !== null) return "revoked";
    if (s.expires_at <= now) return "expired";
    if (now - s.last_seen_at >= TOUCH_EVERY_MS) {
      s.last_seen_at = now;
      await this.store.sessions.touch(sessionId, now);
    }
    return "live";
  }

  /** When a session that state() just called live ends (its absolute expiry), in the clock's ms; 0 if unknown. */
  expiresAt(sessionId: string): number {
    return this.entries.get(sessionId)?.session?.expires_at ?? 0;
  }

  /** Sessions whose answer is kept. */
  get size() {
    return this.entries.size;
  }

  private purge(now: number) {
    this.purgedAt = now;
    for (const [id, entry] of this.entries)
      if (now - entry.checkedAt >= REVALIDATE_MS) this.entries.delete(id);
  }

  /**
   * Forget what is known of these sessions, so this node refuses them from the next request on, and tell
   * the listeners (the realtime gateway closes their sockets, and tells the other nodes of a local revoke).
   */
  invalidate(sessionIds: Iterable<string>, origin: RevokeOrigin = "here") {
    const ids = [...sessionIds];
    this.epoch++;
    for (const id of ids) this.entries.delete(id);
    if (ids.length > 0) for (const listener of this.revokeListeners) listener(ids, origin);
  }

  onRevoke(listener: RevokeListener): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }
}
