// The bound config.ts holds WS_BACKPRESSURE_LIMIT to: no frame a message can make, encoded by the codec the
// gateway uses, is larger than largestMessageFrame says, in any encoding.

import { describe, expect, it } from "bun:test";
import { newId } from "../../src/lib/ids.ts";
import { encode } from "../../src/realtime/codec.ts";
import { largestFrame, largestMessageFrame, largestReceiptsFrame } from "../../src/realtime/frame-bound.ts";
import { ENCODINGS } from "../../src/realtime/protocol.ts";

const MAX_CONTENT = 5000;
const MAX_REACTIONS = 300;
const LAST_DATE = new Date(8.64e15).toISOString();
const SEQ = Number.MAX_SAFE_INTEGER;

/**
 * The frames with the most of every field, each string of `char` at its limit (content and emoji: in
 * bytes), with MAX_REACTIONS reactions of `emoji` (by default `char` up to an emoji's 32 bytes).
 */
function largestFrames(char: string, emoji = char.repeat(Math.floor(32 / Buffer.byteLength(char)))) {
  const s = (characters: number) => char.repeat(characters);
  const attachment = { file_id: s(64), file_name: s(255), file_size: SEQ, mime_type: s(255) };
  const message = (content: string) => ({
    id: s(64),
    conversation_id: s(64),
    sender_id: s(64),
    seq: SEQ,
    version_seq: SEQ,
    client_msg_id: s(64),
    content,
    message_type: "system",
    status: "delivered",
    reply_to: s(64),
    attachments: Array.from({ length: 20 }, () => attachment),
    reactions: Array.from({ length: MAX_REACTIONS }, () => ({ user_id: newId(), emoji })),
    envelope: null,
    edited_at: LAST_DATE,
    deleted: false,
    created_at: LAST_DATE,
    updated_at: LAST_DATE,
  });
  // Content of MAX_CONTENT bytes of UTF-8.
  const content = char.repeat(Math.floor(MAX_CONTENT / Buffer.byteLength(char)));
  expect(Buffer.byteLength(content)).toBeLessThanOrEqual(MAX_CONTENT);
  const event = {
    type: "event",
    kind: "reaction.removed",
    conversation_id: s(64),
    seq: SEQ,
    user_id: s(64),
    emoji: "\u0001".repeat(32),
    by: s(64),
  };
  const changes = { name: s(200), topic: s(1000) };
  return [
    { ...event, message: message(content) },
    {
      ...event,
      kind: "conversation.updated",
      message: message(JSON.stringify({ event: "conversation.updated", changes })),
      changes,
    },
  ];
}

const size = (frame: Uint8Array | string) =>
  typeof frame === "string" ? Buffer.byteLength(frame) : frame.byteLength;

describe("largestMessageFrame", () => {
  it("is no smaller than any frame a message makes, in every encoding, whatever its characters", () => {
    const bound = largestMessageFrame({
      MAX_MESSAGE_LENGTH: MAX_CONTENT,
      MAX_REACTIONS_PER_MESSAGE: MAX_REACTIONS,
    });
    let largest = 0;
    // A control character is 6 bytes of JSON; the others are as many as their UTF-8, up to 4. An emoji of
    // one grapheme may pass 32 bytes: a quote with combining accents is 63 bytes, 64 of JSON.
    const frames = [
      ...["\u0001", '"', "x", "\u00e9", "\u0800", "\u{1f600}"].flatMap((char) => largestFrames(char)),
      ...largestFrames("\u0001", `"${"\u0301".repeat(31)}`),
    ];
    for (const frame of frames) {
      for (const encoding of ENCODINGS) largest = Math.max(largest, size(encode(frame, encoding)));
    }
    expect(largest).toBeLessThanOrEqual(bound);
    // Tight enough to be the limit's measure: within a few KB of the largest frame.
    expect(bound - largest).toBeLessThan(8192);
  });
});

describe("largestReceiptsFrame", () => {
  it("is no smaller than the receipts frame of a group of MAX_GROUP_MEMBERS, in every encoding", () => {
    const members = 700;
    const bound = largestReceiptsFrame({ MAX_GROUP_MEMBERS: members });
    const frame = {
      type: "receipts",
      conversation_id: newId(),
      version: SEQ,
      members: Array.from({ length: members }, () => ({ user_id: newId(), delivered: SEQ, read: SEQ })),
    };
    const largest = Math.max(...ENCODINGS.map((encoding) => size(encode(frame, encoding))));
    expect(largest).toBeLessThanOrEqual(bound);
    expect(bound - largest).toBeLessThan(8192);
    // The largest frame of all is the larger of the two.
    const limits = { MAX_MESSAGE_LENGTH: 1, MAX_REACTIONS_PER_MESSAGE: 1, MAX_GROUP_MEMBERS: 100_000 };
    expect(largestFrame(limits)).toBe(largestReceiptsFrame(limits));
    expect(largestFrame({ ...limits, MAX_GROUP_MEMBERS: 2 })).toBe(largestMessageFrame(limits));
  });
});
