// Schemas of the message routes and the API shape of a message.

import { t } from "elysia";
import { iso, isoOrNull } from "../../lib/clock.ts";
import { Characters, Text } from "../../lib/text.ts";
import type { MemberPosition, MessageRecord, PositionFloor } from "../../store/types.ts";

const Id = t.String({ minLength: 1, maxLength: 64 });

export const MessageType = t.Union([
  t.Literal("text"),
  t.Literal("image"),
  t.Literal("file"),
  t.Literal("system"),
]);
export const MessageStatus = t.Union([t.Literal("sent"), t.Literal("delivered"), t.Literal("read")]);

export const AttachmentSchema = t.Object({
  file_id: Id,
  file_name: Text({ minLength: 1, maxLength: 255 }),
  file_size: t.Integer({ minimum: 0 }),
  mime_type: Text({ minLength: 1, maxLength: 255 }),
});

export const SendMessage = t.Object({
  content: t.Optional(t.String()),
  message_type: t.Optional(t.Union([t.Literal("text"), t.Literal("image"), t.Literal("file")])),
  client_msg_id: t.Optional(Text({ minLength: 1, maxLength: 64 })),
  reply_to: t.Optional(Id),
  attachments: t.Optional(t.Array(AttachmentSchema, { maxItems: 20 })),
});
export type SendMessage = typeof SendMessage.static;

export const EditMessage = t.Object({ content: t.String() });
export const ReactionBody = t.Object({ emoji: t.String() });
export const ReadBody = t.Object({ seq: t.Integer({ minimum: 0 }) });

export const PageQuery = t.Object({
  before: t.Optional(t.Integer({ minimum: 0 })),
  after: t.Optional(t.Integer({ minimum: 0 })),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 200, default: 50 })),
});
export const EventsQuery = t.Object({
  after: t.Optional(t.Integer({ minimum: 0, default: 0 })),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000, default: 200 })),
});
export const SearchQuery = t.Object({
  q: Characters({ minLength: 1, maxLength: 200 }),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 })),
});

export const MessageParams = t.Object({ id: Id });
export const ReactionParams = t.Object({ id: Id, emoji: t.String({ minLength: 1, maxLength: 200 }) });

export const MessageView = t.Object({
  id: t.String(),
  conversation_id: t.String(),
  sender_id: t.String(),
  seq: t.Integer(),
  version_seq: t.Integer(),
  client_msg_id: t.Union([t.String(), t.Null()]),
  content: t.String(),
  message_type: MessageType,
  status: MessageStatus,
  reply_to: t.Union([t.String(), t.Null()]),
  attachments: t.Array(AttachmentSchema),
  reactions: t.Array(t.Object({ user_id: t.String(), emoji: t.String() })),
  envelope: t.Union([t.Record(t.String(), t.Unknown()), t.Null()]),
  edited_at: t.Union([t.String(), t.Null()]),
  deleted: t.Boolean(),
  created_at: t.String(),
  updated_at: t.String(),
});
export type MessageView = typeof MessageView.static;
export type MessageStatus = typeof MessageStatus.static;

export const MessagePage = t.Object({ items: t.Array(MessageView), has_more: t.Boolean() });
export const EventPage = t.Object({
  items: t.Array(MessageView),
  last_seq: t.Integer(),
  has_more: t.Boolean(),
});
export const Receipt = t.Object(
  {
    user_id: t.String(),
    delivered_at: t.Union([t.String(), t.Null()]),
    read_at: t.Union([t.String(), t.Null()]),
  },
  {
    description:
      "null until the member's delivered (read) position reaches the message, then when that position last " +
      "moved: one time per member, so a later read moves the read_at of every message before it too",
  },
);
export type Receipt = typeof Receipt.static;

export const ReceiptCounts = t.Object(
  { recipients: t.Integer(), delivered: t.Integer(), read: t.Integer() },
  {
    description:
      "The whole channel's: the members the message was sent to (who joined before it, its sender left out), " +
      "and how many of them have it delivered and have read it (read <= delivered <= recipients)",
  },
);

/**
 * A dm's or group's: `items` alone, every member it was sent to. A channel's (its readers are not shown
 * each other, and it has thousands): `counts` for the whole channel and `next_cursor` too, `items` a page
 * of those it was sent to (by user id) for its owners and admins, a reader's own entry alone for a reader.
 */
export const Receipts = t.Object(
  {
    items: t.Array(Receipt),
    next_cursor: t.Optional(
      t.Union([t.String(), t.Null()], {
        description:
          "In a channel only: the next page's cursor, null at the end. A page is `limit` members by user id, " +
          "those of them the message was sent to listed: it may hold fewer, even none, before the end",
      }),
    ),
    counts: t.Optional(ReceiptCounts),
  },
  {
    description:
      "A dm or group: items, every member the message was sent to. A channel: also counts and next_cursor; " +
      "items a page of its recipients for an owner or admin, your own entry alone for a reader",
  },
);
export type Receipts = typeof Receipts.static;

/** The lowest position among the members other than the sender; undefined when there are none. */
function othersLowest(lowest: MemberPosition[], senderId: string): number | undefined {
  const [first, second] = lowest;
  return (first?.user_id === senderId ? second : first)?.seq;
}

/**
 * sent, delivered (every other member has it) or read (every other member has read up to it), from the
 * conversation's two lowest positions of each kind (store positionFloor): the lowest among the others is
 * the lowest, unless the sender is that member, then the second lowest.
 */
export function statusOf(
  message: Pick<MessageRecord, "seq" | "sender_id">,
  floor: PositionFloor,
): MessageStatus {
  const read = othersLowest(floor.read, message.sender_id);
  if (read === undefined) return "sent";
  if (read >= message.seq) return "read";
  const delivered = othersLowest(floor.delivered, message.sender_id);
  if (delivered !== undefined && delivered >= message.seq) return "delivered";
  return "sent";
}

export function toMessageView(m: MessageRecord, status: MessageStatus = "sent"): MessageView {
  return {
    id: m.id,
    conversation_id: m.conversation_id,
    sender_id: m.sender_id,
    seq: m.seq,
    version_seq: m.version_seq,
    client_msg_id: m.client_msg_id,
    content: m.content,
    message_type: m.message_type,
    status,
    reply_to: m.reply_to,
    attachments: m.attachments,
    reactions: m.reactions,
    envelope: m.envelope,
    edited_at: isoOrNull(m.edited_at),
    deleted: m.deleted,
    created_at: iso(m.created_at),
    updated_at: iso(m.updated_at),
  };
}
