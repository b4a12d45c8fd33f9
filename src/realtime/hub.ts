// The hub: every change in a conversation becomes one event on the topic `c:<conversation_id>`.
// The realtime gateway subscribes sockets to these topics; REST and socket writes both publish here.

import type { Broker } from "../broker/types.ts";

export type ConversationEventKind =
  | "message.created"
  | "message.edited"
  | "message.deleted"
  | "reaction.added"
  | "reaction.removed"
  | "participant.added"
  | "participant.removed"
  | "participant.updated"
  | "conversation.updated"
  | "conversation.deleted"
  | "receipt.read";

export interface ConversationEvent {
  kind: ConversationEventKind;
  conversation_id: string;
  /** The seq this change took; 0 for changes outside the log (deletion, receipts). */
  seq: number;
  [field: string]: unknown;
}

export const conversationTopic = (conversationId: string) => `c:${conversationId}`;

export class Hub {
  constructor(private broker: Broker) {}

  publish(event: ConversationEvent) {
    this.broker.publish(conversationTopic(event.conversation_id), event);
  }

  subscribe(conversationId: string, handler: (event: ConversationEvent) => void) {
    return this.broker.subscribe(conversationTopic(conversationId), (e) => handler(e as ConversationEvent));
  }
}
