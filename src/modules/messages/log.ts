// Appending to a conversation's log: building message drafts and the `system` messages that record
// membership and conversation changes.

import type { Clock } from "../../lib/clock.ts";
import { AppError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import { type AppendResult, type MessageRecord, MissingError, type Store } from "../../store/types.ts";

export type MessageDraft = Omit<MessageRecord, "seq" | "version_seq">;

export function draft(
  fields: Pick<MessageDraft, "conversation_id" | "sender_id" | "content" | "message_type"> &
    Partial<MessageDraft>,
  now: number,
): MessageDraft {
  return {
    id: newId(now),
    client_msg_id: null,
    reply_to: null,
    attachments: [],
    reactions: [],
    envelope: null,
    edited_at: null,
    deleted: false,
    created_at: now,
    updated_at: now,
    ...fields,
  };
}

/**
 * A write into a conversation. The conversation may be deleted between the caller's membership check and
 * the write (the store says MissingError): that is a 404, as it would have been a moment earlier.
 */
export async function intoConversation<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    if (err instanceof MissingError) throw new AppError("not_found", "conversation not found");
    throw err;
  }
}

/** Appends a draft to its conversation's log (404 if the conversation is gone meanwhile). */
export function append(store: Store, message: MessageDraft): Promise<AppendResult> {
  return intoConversation(store.messages.append(message));
}

/**
 * Records a change as a `system` message; its content is JSON ({event, ...details}) so clients can
 * render it in their own words.
 */
export async function appendSystem(
  deps: { store: Store; clock: Clock },
  conversationId: string,
  actorId: string,
  details: { event: string } & Record<string, unknown>,
): Promise<MessageRecord> {
  const now = deps.clock.now();
  const result = await append(
    deps.store,
    draft(
      {
        conversation_id: conversationId,
        sender_id: actorId,
        content: JSON.stringify(details),
        message_type: "system",
      },
      now,
    ),
  );
  return result.message;
}
