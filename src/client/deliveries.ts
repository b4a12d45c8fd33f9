// Delivery receipts the SDK makes itself (the `autoAck` option): once it has handed the app another
// member's message (live, replayed, or paged over REST for a resync), it tells the server `message_ack`
// with the highest seq it has handed the app in that conversation, so that the sender's tick moves to
// "delivered" whether or not the app acknowledges anything. Coalesced: per conversation one ack in flight
// at a time, ACK_DELAY_MS apart at least, each naming the highest seq handed over by the time it goes.

import { ParleyError } from "./errors.ts";
import type { ConversationEvent } from "./events.ts";

/** How long deliveries gather before their ack goes: a burst of messages (a catch-up) takes one ack. */
export const ACK_DELAY_MS = 100;
/**
 * Acks on their way at once, over every conversation. Each is a frame under the server's frame rate, in
 * the one queue the app's sends are in too: after a night offline in hundreds of conversations, a send
 * waits behind a few acks, not behind all of them.
 */
const IN_FLIGHT = 4;
/** An ack that failed while connected (timed out, storage unavailable) is made again this much later. */
const RETRY_MS = 2_000;

interface Conversation {
  /** The highest seq handed to the app. */
  given: number;
  /** The highest seq the server has taken an ack of (or said the user's delivery stands at). */
  acked: number;
  /** The seq of the ack on its way, or 0. */
  flying: number;
}

export class Deliveries {
  private conversations = new Map<string, Conversation>();
  /**
   * The conversations owed an ack: another member's message was handed over there that no ack made or
   * on its way covers.
   */
  private owed = new Set<string>();
  private flying = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private userId: string,
    /** Sends `message_ack` (a request that survives a reconnect); settles with the server's answer. */
    private ack: (conversationId: string, seq: number) => Promise<void>,
    /** True while a socket is open and has said hello. */
    private online: () => boolean,
  ) {}

  /**
   * An event was handed to the app. A message of another member in it (a `message.changed` of a replay
   * carries one too) is owed an ack; the user's own are not: the server counts no member's delivery of
   * their own messages (their status and receipts leave the sender out).
   */
  delivered(event: ConversationEvent) {
    if (!(event.seq > 0)) return;
    const c = this.of(event.conversation_id);
    c.given = Math.max(c.given, event.seq);
    const m = event.message;
    if (!m || m.sender_id === this.userId || m.message_type === "system") return;
    if (m.seq > Math.max(c.acked, c.flying)) {
      this.owed.add(event.conversation_id);
      this.schedule(ACK_DELAY_MS);
    }
  }

  /**
   * Where the server says the user's delivery stands (a receipt of theirs, live or from a resume's
   * snapshot): what it covers is owed nothing more (a REST catch-up marks its pages delivered itself).
   */
  standsAt(conversationId: string, seq: number) {
    const c = this.of(conversationId);
    if (seq <= c.acked) return;
    c.acked = seq;
    if (c.given <= seq) this.owed.delete(conversationId);
  }

  /** A new socket said hello: the acks owed (ones lost with the last socket among them) go out. */
  hello() {
    this.schedule(ACK_DELAY_MS);
  }

  /** We are no longer in the conversation: nothing more is owed there. */
  forget(conversationId: string) {
    this.conversations.delete(conversationId);
    this.owed.delete(conversationId);
  }

  /** The connection stopped: nothing goes out until the next hello; what is owed stays owed. */
  stop() {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private of(conversationId: string): Conversation {
    let c = this.conversations.get(conversationId);
    if (!c) {
      c = { given: 0, acked: 0, flying: 0 };
      this.conversations.set(conversationId, c);
    }
    return c;
  }

  private schedule(ms: number) {
    if (this.timer !== undefined || !this.online()) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, ms);
  }

  private flush() {
    if (!this.online()) return;
    for (const id of this.owed) {
      if (this.flying >= IN_FLIGHT) return;
      const c = this.conversations.get(id);
      if (c && c.flying === 0) this.send(id, c);
    }
  }

  private send(id: string, c: Conversation) {
    const seq = c.given;
    this.owed.delete(id);
    c.flying = seq;
    this.flying++;
    this.ack(id, seq).then(
      () => {
        c.acked = Math.max(c.acked, seq);
        this.landed(c, ACK_DELAY_MS);
      },
      (err: unknown) => {
        // Not a member any more (removed while the ack was on its way): nothing is owed there.
        if (err instanceof ParleyError && (err.code === "not_found" || err.code === "forbidden")) {
          this.forget(id);
          return this.landed(c, ACK_DELAY_MS);
        }
        if (c.given > c.acked && this.conversations.get(id) === c) this.owed.add(id);
        this.landed(c, RETRY_MS);
      },
    );
  }

  /** An ack was answered: the next ones owed go out after `ms` (the one just made, if more came since). */
  private landed(c: Conversation, ms: number) {
    c.flying = 0;
    this.flying--;
    if (this.owed.size > 0) this.schedule(ms);
  }
}
