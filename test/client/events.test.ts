// The SDK fills out the short live form of a new message (frames.ts LiveMessage) to a whole MessageView.

import { expect, it } from "bun:test";
import { type ConversationEvent, fromWire } from "../../src/client/events.ts";
import type { MessageView } from "../../src/client/types.ts";
import { liveMessage } from "../../src/realtime/event-frames.ts";

const full: MessageView = {
  id: "m1",
  conversation_id: "c1",
  sender_id: "u1",
  seq: 7,
  version_seq: 7,
  client_msg_id: "cm-1",
  content: "",
  message_type: "file",
  status: "sent",
  reply_to: "m0",
  attachments: [{ file_id: "f1", file_name: "a.bin", file_size: 9, mime_type: "application/octet-stream" }],
  reactions: [],
  envelope: { v: 1, ciphertext: "abc" },
  edited_at: null,
  deleted: false,
  created_at: "2026-11-29T10:00:00.000Z",
  updated_at: "2026-11-29T10:00:00.000Z",
};

const event = (message: unknown): ConversationEvent => ({
  type: "event",
  kind: "message.created",
  conversation_id: "c1",
  seq: 7,
  message: message as MessageView,
});

it("round-trips a new message through the short live form, every optional field set", () => {
  expect(fromWire(event(liveMessage(full))).message).toEqual(full);
});

it("round-trips a plain text message, whose short form has only the required fields", () => {
  const plain: MessageView = {
    ...full,
    client_msg_id: null,
    content: "hi",
    message_type: "text",
    reply_to: null,
    attachments: [],
    envelope: null,
  };
  expect(Object.keys(liveMessage(plain)).sort()).toEqual(["content", "created_at", "id", "sender_id"]);
  expect(fromWire(event(liveMessage(plain))).message).toEqual(plain);
});

it("leaves replayed (whole) messages and other events as they are", () => {
  const replayed = { ...event({ ...full, status: "read" }), replayed: true };
  expect(fromWire(replayed)).toBe(replayed);
  const other: ConversationEvent = {
    type: "event",
    kind: "participant.added",
    conversation_id: "c1",
    seq: 8,
  };
  expect(fromWire(other)).toBe(other);
});
