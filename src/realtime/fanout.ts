// Hub events -> frames on Bun topics. Each frame is encoded at most once per encoding and published as
// the same bytes to every subscriber, in native code: never a JavaScript loop over sockets.

import type { Server } from "bun";
import type { MessageView } from "../modules/messages/model.ts";
import { encode } from "./codec.ts";
import type { Connections, Socket } from "./connections.ts";
import type { LiveMessage } from "./frames.ts";
import type { ConversationEvent } from "./hub.ts";
import type { Encoding, ServerFrame } from "./protocol.ts";

const ENCODINGS: Encoding[] = ["msgpack", "json"];
const suffix = (encoding: Encoding) => (encoding === "msgpack" ? "|m" : "|j");

export const topics = {
  conversation: (id: string, encoding: Encoding) => `c:${id}${suffix(encoding)}`,
  user: (id: string, encoding: Encoding) => `u:${id}${suffix(encoding)}`,
  channel: (name: string, encoding: Encoding) => `p:${name}${suffix(encoding)}`,
};

export class Fanout {
  private server: Server<unknown> | null = null;

  constructor(private connections: Connections) {}

  attach(server: Server<unknown>) {
    this.server ??= server;
  }

  /** Publishes one frame to a logical topic in every encoding that has subscribers on this node. */
  publish(topicOf: (encoding: Encoding) => string, frame: ServerFrame) {
    const server = this.server;
    if (!server) return;
    for (const encoding of ENCODINGS) {
      // No socket of this node speaks it: nothing to ask Bun about (most nodes serve one encoding).
      if (this.connections.speaking(encoding) === 0) continue;
      const topic = topicOf(encoding);
      if (server.subscriberCount(topic) > 0) server.publish(topic, encode(frame, encoding));
    }
  }

  /**
   * Sends a frame to the sockets of one device (session) on this node, encoded once per encoding. A
   * device has a socket or two, so they are looked up rather than each subscribed to a topic of its own
   * (a topic per socket costs its memory on every idle connection).
   */
  toSession(sessionId: string, frame: ServerFrame) {
    const encoded: Partial<Record<Encoding, Uint8Array | string>> = {};
    for (const ws of this.connections.ofSession(sessionId)) {
      const encoding = ws.data.encoding;
      encoded[encoding] ??= encode(frame, encoding);
      ws.send(encoded[encoding]);
    }
  }

  /**
   * Publishes one frame to the topics of many ids (presence to every peer), encoding it at most once per
   * encoding however many topics it goes to.
   */
  publishEach(
    ids: Iterable<string>,
    topicOf: (id: string, encoding: Encoding) => string,
    frame: ServerFrame,
  ) {
    const server = this.server;
    if (!server) return;
    for (const encoding of ENCODINGS) {
      if (this.connections.speaking(encoding) === 0) continue;
      let bytes: Uint8Array | string | undefined;
      for (const id of ids) {
        const topic = topicOf(id, encoding);
        if (server.subscriberCount(topic) === 0) continue;
        bytes ??= encode(frame, encoding);
        server.publish(topic, bytes);
      }
    }
  }

  /** Applies membership changes to live subscriptions, then publishes the event to the conversation. */
  onEvent(event: ConversationEvent) {
    const id = event.conversation_id;
    const sockets = (userId: unknown): ReadonlySet<Socket> =>
      typeof userId === "string" ? this.connections.ofUser(userId) : new Set();
    if (event.kind === "conversation.created" && Array.isArray(event.participant_ids)) {
      for (const userId of event.participant_ids) {
        for (const ws of sockets(userId)) ws.subscribe(topics.conversation(id, ws.data.encoding));
      }
    }
    if (event.kind === "participant.added") {
      for (const ws of sockets(event.user_id)) ws.subscribe(topics.conversation(id, ws.data.encoding));
    }
    this.publish((e) => topics.conversation(id, e), toFrame(event));
    if (event.kind === "participant.removed") {
      for (const ws of sockets(event.user_id)) ws.unsubscribe(topics.conversation(id, ws.data.encoding));
    }
  }
}

function toFrame(event: ConversationEvent): ServerFrame {
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
  if (event.kind === "message.created") {
    const { message, ...rest } = event;
    return { type: "event", ...rest, message: liveMessage(message as MessageView) };
  }
  return { type: "event", ...event };
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
