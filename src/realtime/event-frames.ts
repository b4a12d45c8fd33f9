// Hub events as the frames sockets get: receipts as `receipt` or `receipts` frames, a new message in its short live
// form, every other change as an `event` frame.

import type { MessageView } from "../modules/messages/model.ts";
import type { LiveMessage, ReceiptPosition } from "./frames.ts";
import type { ConversationEvent } from "./hub.ts";
import type { ServerFrame } from "./protocol.ts";

/** The frame a hub event goes out as. */
export function toFrame(event: ConversationEvent): ServerFrame {
  if (event.kind === "receipt.read" || event.kind === "receipt.delivered") {
    const read = event.kind === "receipt.read";
    return {
      type: "receipt",
      conversation_id: event.conversation_id,
      user_id: String(event.user_id),
      kind: read ? "read" : "delivered",
      seq: Number(read ? event.last_read_seq : event.delivered_seq),
    };
  }
  if (event.kind === "receipts.moved")
    return {
      type: "receipts",
      conversation_id: event.conversation_id,
      members: event.members as ReceiptPosition[],
      live: true,
    };
  if (event.kind === "message.created") {
    const { message, ...rest } = event;
    return { type: "event", ...rest, message: liveMessage(message as MessageView) };
  }
  // Who joins (conversation.created) is for the server: a channel's frame must not list its readers.
  const { joining: _, ...told } = event;
  return { type: "event", ...told };
}

/** The short form of a new message on the wire (see LiveMessage). */
export function liveMessage(m: MessageView): LiveMessage {
  const live: LiveMessage = {
    id: m.id,
    sender_id: m.sender_id,
    content: m.content,
    created_at: m.created_at,
  };
  if (m.message_type !== "text") live.message_type = m.message_type;
  if (m.client_msg_id !== null) live.client_msg_id = m.client_msg_id;
  if (m.reply_to !== null) live.reply_to = m.reply_to;
  if (m.attachments.length > 0) live.attachments = m.attachments;
  if (m.envelope !== null) live.envelope = m.envelope;
  return live;
}
