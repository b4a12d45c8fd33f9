// The hub: every change in a conversation becomes one event on the topic `c:<conversation_id>`.
// The realtime gateway subscribes sockets to these topics; REST and socket writes both publish here.

import type { Broker } from "../broker/types.ts";
import type { EventKind } from "./frames.ts";

/** What the hub carries: the wire's event kinds (live ones) plus receipts, which go out as `receipt` frames. */
export type ConversationEventKind =
  | Exclude<EventKind, "message.changed">
  | "receipt.read"
  | "receipt.delivered";

export interface ConversationEvent {
  kind: ConversationEventKind;
  conversation_id: string;
  /** The seq this change took; 0 for changes outside the log (deletion, receipts). */
  seq: number;
  [field: string]: unknown;
}

export const conversationTopic = (conversationId: string) => `c:${conversationId}`;

export class Hub {
  private listeners = new Set<(event: ConversationEvent) => void>();

  constructor(private broker: Broker) {}

  publish(event: ConversationEvent) {
    this.broker.publish(conversationTopic(event.conversation_id), event);
    for (const listener of this.listeners) listener(event);
  }

  /** Every event of every conversation (the gateway turns them into frames on Bun topics). */
  onEvent(listener: (event: ConversationEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribe(conversationId: string, handler: (event: ConversationEvent) => void) {
    return this.broker.subscribe(conversationTopic(conversationId), (e) => handler(e as ConversationEvent));
  }
}
