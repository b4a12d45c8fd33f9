// The SDK tells a resume's replayed changes from live events by their shape (events.ts, replayShaped),
// checked here against the frames the server itself builds for both.

import { describe, expect, it } from "bun:test";
import { type ConversationEvent, replayShaped } from "../../src/client/events.ts";
import { toMessageView } from "../../src/modules/messages/model.ts";
import { decode } from "../../src/realtime/codec.ts";
import { toFrame } from "../../src/realtime/event-frames.ts";
import { ReplayCache } from "../../src/realtime/replay-cache.ts";
import type { MessageRecord } from "../../src/store/types.ts";

const record = (over: Partial<MessageRecord> = {}): MessageRecord =>
  ({
    id: "m1",
    conversation_id: "c1",
    sender_id: "u1",
    seq: 4,
    version_seq: 4,
    client_msg_id: null,
    content: "hi",
    message_type: "text",
    reply_to: null,
    attachments: [],
    reactions: [],
    envelope: null,
    edited_at: null,
    deleted: false,
    created_at: new Date(0).toISOString(),
    updated_at: new Date(0).toISOString(),
    ...over,
  }) as unknown as MessageRecord;

describe("replayShaped", () => {
  for (const encoding of ["msgpackr", "msgpack", "json"] as const) {
    it(`knows the server's replayed frames (${encoding})`, () => {
      const cache = new ReplayCache();
      for (const m of [record(), record({ version_seq: 6 }), record({ version_seq: 7, deleted: true })]) {
        const frame = decode(cache.frame(m, encoding, "sent"), encoding) as ConversationEvent;
        expect(replayShaped(frame)).toBe(true);
      }
    });
  }

  it("takes no live frame for one", () => {
    const view = toMessageView(record({ version_seq: 7, deleted: true }));
    const live = [
      toFrame({ kind: "message.created", conversation_id: "c1", seq: 4, message: toMessageView(record()) }),
      toFrame({ kind: "message.deleted", conversation_id: "c1", seq: 7, message: view, by: "u1" }),
      toFrame({ kind: "message.edited", conversation_id: "c1", seq: 7, message: view }),
      toFrame({ kind: "reaction.added", conversation_id: "c1", seq: 7, message: view }),
      toFrame({ kind: "participant.added", conversation_id: "c1", seq: 7, message: view, user_id: "u2" }),
    ];
    for (const frame of live) expect(replayShaped(frame as unknown as ConversationEvent)).toBe(false);
  });
});
