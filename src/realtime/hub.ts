// The hub: every change in a conversation becomes one event, published here by REST and socket writes
// alike. The realtime gateway turns events into frames (fanout.ts), which reach other nodes through the broker.

import type { EventKind } from "./frames.ts";

/**
 * What the hub carries: the wire's event kinds (live ones) plus receipts, which go out as `receipt` frames
 * (one member's, in a channel) or `receipts` frames (the members' of a dm or group that moved in a window).
 */
export type ConversationEventKind =
  | Exclude<EventKind, "message.changed">
  | "receipt.read"
  | "receipt.delivered"
  | "receipts.moved";

export interface ConversationEvent {
  kind: ConversationEventKind;
  conversation_id: string;
  /** The seq this change took; 0 for changes outside the log (deletion, receipts). */
  seq: number;
  /**
   * conversation.created: every member, whose sockets join the conversation (fanout.ts). Never sent: the
   * frame's participant_ids name only those a view shows (a channel's readers are not told of each other).
   */
  joining?: string[];
  /**
   * For the devices of `user_id` alone, never the conversation's topic: a channel member's receipt, or a
   * channel's reader added or removed (whose sockets the fanout moves in or out on every node). Never sent.
   */
  to_self?: boolean;
  [field: string]: unknown;
}

export class Hub {
  private listeners = new Set<(event: ConversationEvent) => void>();

  publish(event: ConversationEvent) {
    for (const listener of this.listeners) listener(event);
  }

  /** Every event of every conversation (the gateway turns them into frames on Bun topics). */
  onEvent(listener: (event: ConversationEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The events of one conversation. */
  subscribe(conversationId: string, handler: (event: ConversationEvent) => void): () => void {
    return this.onEvent((event) => {
      if (event.conversation_id === conversationId) handler(event);
    });
  }
}
