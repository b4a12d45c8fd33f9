// Whether a user is a member of a conversation, and with what role: asked for every message sent, so
// the answer is kept in memory instead of read from the store each time. A membership write through this
// node's store is seen at once (the store given to the services forgets the conversation before and after
// every such write); one made on another node, at once where the broker brings word of it (nodes with
// sockets in the conversation or of the user; of a channel's reader, whose change its other members are
// not told, those with the reader's sockets: realtime/fanout.ts), and within REVALIDATE_MS everywhere.
// A node alone (no shared broker, and holding its DATA_DIR's lock: store/sqlite/data-dir-lock.ts) makes
// every membership write itself, so it re-reads an answer only after REVALIDATE_ALONE_MS: re-reading every
// active sender's membership each second cost ~7% of the messages a node persisted with 5,000 users
// sending (bench, dms).

import type { Clock } from "../../lib/clock.ts";
import { AppError } from "../../lib/errors.ts";
import type { ConversationsRepo, ConversationType, ParticipantRole, Store } from "../../store/types.ts";

/** How old an answer may be on a node among others (nodes sharing a broker). */
export const REVALIDATE_MS = 1000;
/** How old an answer may be on a node alone, which sees every membership write as it is made. */
export const REVALIDATE_ALONE_MS = 60_000;
const MAX_ENTRIES = 100_000;

export interface Member {
  conversation_type: ConversationType;
  role: ParticipantRole;
}

interface Entry extends Member {
  checkedAt: number;
}

export class MembershipCache {
  /** conversation id -> user id -> what the store said, and when. */
  private entries = new Map<string, Map<string, Entry>>();
  private size = 0;
  /** Moves on every forget: a read that started before one must not put its answer in the cache. */
  private epoch = 0;

  constructor(
    private store: Store,
    private clock: Clock,
    private revalidateMs = REVALIDATE_MS,
  ) {}

  /** The caller's membership; 404 when the conversation does not exist or they are not a member. */
  async require(conversationId: string, userId: string): Promise<Member> {
    const now = this.clock.now();
    const known = this.entries.get(conversationId)?.get(userId);
    if (known && now - known.checkedAt < this.revalidateMs) return known;
    const epoch = this.epoch;
    const me = await this.store.conversations.participant(conversationId, userId);
    // A conversation's type never changes: only whether it (and the membership) still exists.
    const type =
      known?.conversation_type ?? (await this.store.conversations.byId(conversationId))?.conversation_type;
    if (!me || !type) {
      this.drop(conversationId, userId);
      throw new AppError("not_found", "conversation not found");
    }
    const entry: Entry = { conversation_type: type, role: me.role, checkedAt: now };
    if (epoch === this.epoch) this.put(conversationId, userId, entry);
    return entry;
  }

  /** Drops what is known of the conversation's members (after any change to them, or to it). */
  forget(conversationId: string) {
    this.epoch++;
    const members = this.entries.get(conversationId);
    if (!members) return;
    this.size -= members.size;
    this.entries.delete(conversationId);
  }

  /**
   * The store with its membership writes made visible to this cache: the conversation is forgotten when
   * the write starts (so no read from before it is kept) and again when it ends (so none made during it is).
   */
  watch(store: Store): Store {
    const inner = store.conversations;
    const around =
      <A extends unknown[], R>(write: (...args: A) => Promise<R>, conversationIdOf: (...args: A) => string) =>
      async (...args: A): Promise<R> => {
        const id = conversationIdOf(...args);
        this.forget(id);
        try {
          return await write(...args);
        } finally {
          this.forget(id);
        }
      };
    const conversations: ConversationsRepo = {
      ...inner,
      create: around(inner.create.bind(inner), (c) => c.id),
      update: around(inner.update.bind(inner), (id) => id),
      delete: around(inner.delete.bind(inner), (id) => id),
      addParticipant: around(inner.addParticipant.bind(inner), (p) => p.conversation_id),
      setRole: around(inner.setRole.bind(inner), (id) => id),
      removeParticipant: around(inner.removeParticipant.bind(inner), (id) => id),
    };
    return { ...store, conversations };
  }

  private drop(conversationId: string, userId: string) {
    if (this.entries.get(conversationId)?.delete(userId)) this.size--;
  }

  private put(conversationId: string, userId: string, entry: Entry) {
    if (this.size >= MAX_ENTRIES) {
      this.entries.clear();
      this.size = 0;
    }
    let members = this.entries.get(conversationId);
    if (!members) {
      members = new Map();
      this.entries.set(conversationId, members);
    }
    if (!members.has(userId)) this.size++;
    members.set(userId, entry);
  }
}
