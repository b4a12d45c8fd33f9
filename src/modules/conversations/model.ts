// Schemas of the conversation routes and the API shape of a conversation.

import { t } from "elysia";
import { iso } from "../../lib/clock.ts";
import { Text } from "../../lib/text.ts";
import type { ConversationRecord, ParticipantRecord } from "../../store/types.ts";

const Id = t.String({ minLength: 1, maxLength: 64 });
export const Role = t.Union([t.Literal("owner"), t.Literal("admin"), t.Literal("member")]);
export const ConversationType = t.Union([t.Literal("dm"), t.Literal("group"), t.Literal("channel")]);

export const CreateConversation = t.Object({
  conversation_type: ConversationType,
  participant_ids: t.Array(Id, { maxItems: 1000 }),
  name: t.Optional(Text({ minLength: 1, maxLength: 200 })),
  topic: t.Optional(Text({ maxLength: 1000 })),
  encrypted: t.Optional(t.Boolean()),
});
export type CreateConversation = typeof CreateConversation.static;

export const UpdateConversation = t.Object({
  name: t.Optional(Text({ minLength: 1, maxLength: 200 })),
  topic: t.Optional(Text({ maxLength: 1000 })),
});
export type UpdateConversation = typeof UpdateConversation.static;

export const AddParticipant = t.Object({ user_id: Id, role: t.Optional(Role) });
export type AddParticipant = typeof AddParticipant.static;

export const ConversationParams = t.Object({ id: Id });
export const ParticipantParams = t.Object({ id: Id, user_id: Id });

/** activity: most recent activity first (a conversation moves up as it changes); created: oldest first. */
export const ListOrder = t.Union([t.Literal("activity"), t.Literal("created")]);
export type ListOrder = typeof ListOrder.static;

export const ListQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 50 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
  order: t.Optional(ListOrder),
});

export const ParticipantView = t.Object({
  user_id: t.String(),
  role: Role,
  joined_at: t.String(),
  /** Where the member's part of the conversation's log starts: the seq just before they were added. */
  joined_seq: t.Integer(),
  last_read_seq: t.Integer(),
});
export type ParticipantView = typeof ParticipantView.static;

export const ParticipantList = t.Object({
  items: t.Array(ParticipantView),
  next_cursor: t.Union([t.String(), t.Null()]),
});

/**
 * `participants` (and `participant_ids`, their ids) are every member of a dm or group; of a channel, its
 * owners and admins and the viewer themself: a channel's readers are not shown each other (the peers of a
 * reader are its owners and admins: store peersOf), and its owners and admins page through the readers
 * (GET .../participants) rather than get thousands with every view. `member_count` counts them all.
 */
export const ConversationView = t.Object({
  id: t.String(),
  name: t.Union([t.String(), t.Null()]),
  topic: t.Union([t.String(), t.Null()]),
  conversation_type: ConversationType,
  participants: t.Array(ParticipantView),
  participant_ids: t.Array(t.String()),
  member_count: t.Integer(),
  encrypted: t.Boolean(),
  last_message_id: t.Union([t.String(), t.Null()]),
  last_activity: t.String(),
  last_seq: t.Integer(),
  message_count: t.Integer(),
  created_by: t.String(),
  created_at: t.String(),
  updated_at: t.String(),
  unread_count: t.Integer(),
});
export type ConversationView = typeof ConversationView.static;

export const ConversationList = t.Object({
  items: t.Array(ConversationView),
  next_cursor: t.Union([t.String(), t.Null()]),
});

export const toParticipantView = (p: ParticipantRecord): ParticipantView => ({
  user_id: p.user_id,
  role: p.role,
  joined_at: iso(p.joined_at),
  joined_seq: p.joined_seq,
  last_read_seq: p.last_read_seq,
});

/** `participants`: the members the viewer is shown (see ConversationView). */
export function toConversationView(
  c: ConversationRecord,
  participants: ParticipantRecord[],
  unreadCount: number,
): ConversationView {
  return {
    id: c.id,
    name: c.name,
    topic: c.topic,
    conversation_type: c.conversation_type,
    participants: participants.map(toParticipantView),
    participant_ids: participants.map((p) => p.user_id),
    member_count: c.member_count,
    encrypted: c.encrypted,
    last_message_id: c.last_message_id,
    last_activity: iso(c.last_activity),
    last_seq: c.last_seq,
    message_count: c.message_count,
    created_by: c.created_by,
    created_at: iso(c.created_at),
    updated_at: iso(c.updated_at),
    unread_count: unreadCount,
  };
}
