// Who may see and do what in a conversation. A conversation the caller is not a member of does not
// exist for them: every lookup here answers 404 rather than 403 to outsiders.

import { AppError } from "../../lib/errors.ts";
import type { ConversationRecord, MessageRecord, ParticipantRecord, Store } from "../../store/types.ts";

export interface Membership {
  conversation: ConversationRecord;
  me: ParticipantRecord;
}

const missing = () => new AppError("not_found", "conversation not found");

export async function requireMember(
  store: Store,
  conversationId: string,
  userId: string,
): Promise<Membership> {
  const me = await store.conversations.participant(conversationId, userId);
  if (!me) throw missing();
  const conversation = await store.conversations.byId(conversationId);
  if (!conversation) throw missing();
  return { conversation, me };
}

/** The message and the caller's membership of its conversation; 404 for both unknown and foreign. */
export async function requireMessage(
  store: Store,
  messageId: string,
  userId: string,
): Promise<Membership & { message: MessageRecord }> {
  const message = await store.messages.byId(messageId);
  if (!message) throw new AppError("not_found", "message not found");
  const me = await store.conversations.participant(message.conversation_id, userId);
  if (!me) throw new AppError("not_found", "message not found");
  const conversation = await store.conversations.byId(message.conversation_id);
  if (!conversation) throw new AppError("not_found", "message not found");
  return { conversation, me, message };
}

export const isManager = (p: Pick<ParticipantRecord, "role">) => p.role === "owner" || p.role === "admin";

export function requireManager(p: ParticipantRecord, what: string) {
  if (!isManager(p)) throw new AppError("forbidden", `only an owner or admin can ${what}`);
}
