// The largest frame a message can make on a socket, from the limits on its content and its reactions, and
// the largest receipts frame, from a group's size: WS_BACKPRESSURE_LIMIT must leave room for them, or one
// legal message (or resume) closes its receivers as slow consumers (config.ts checks it).

/** The settings (config.ts) a message's largest frame depends on. */
export interface MessageLimits {
  MAX_MESSAGE_LENGTH: number;
  MAX_REACTIONS_PER_MESSAGE: number;
}
/** The settings the largest frame of any kind depends on. */
export interface FrameLimits extends MessageLimits {
  MAX_GROUP_MEMBERS: number;
}

/**
 * JSON bytes a character (or a UTF-8 byte of content) can take at most: a control character is one byte
 * of UTF-8 and six of JSON ("\u0001"), as is a lone surrogate in a field that allows one (ids); any other
 * is at most four. MessagePack writes every string as its UTF-8 bytes, so JSON is the larger of the
 * encodings for every field.
 */
const JSON_PER_UNIT = 6;
/** A message's attachments (model.ts, protocol.ts): each a file_id, file_name and mime_type, in characters. */
const ATTACHMENTS = 20;
const ATTACHMENT_UNITS = 64 + 255 + 255;
/**
 * The other strings of a message's frame, 64 characters (or, an emoji, 64 bytes) at most each: the message's id,
 * conversation_id, sender_id, client_msg_id and reply_to, and an event's user_id, emoji and by.
 */
const OTHER_STRINGS = 8 * 64;
/** Keys, punctuation, numbers (16 digits at most), timestamps and fixed words of a frame: generous. */
const FIXED = 4096;
/**
 * A conversation.updated frame's changes (a name of 200 characters and a topic of 1000) are written twice:
 * in the event, and in its system message's content, which is JSON already, so that JSON of it may take
 * one byte more per character ("\\u0001").
 */
const SYSTEM_CHANGE_UNITS = 200 + 1000;
/**
 * One entry of a message's `reactions`, as JSON: `{"user_id":"…","emoji":"…"},`. The user id is one the
 * server made (lib/ids.ts: 20 characters of [0-9a-z], a byte each). The emoji is 1-32 bytes, each at most
 * 6 of JSON (a control character), or one grapheme of up to 64 bytes, which holds no control character
 * (each is a grapheme of its own), so its JSON is at most a byte more than its UTF-8 per `"` or `\`.
 */
export const REACTION_BYTES = '{"user_id":"","emoji":""},'.length + 20 + JSON_PER_UNIT * 32;

/**
 * The largest frame, in bytes, that a message (its send, edit, deletion or a reaction's change, live or
 * replayed) or a system message makes in any encoding, with content of at most MAX_MESSAGE_LENGTH bytes of
 * UTF-8 and at most MAX_REACTIONS_PER_MESSAGE reactions (a system message may be reacted to as well).
 */
export function largestMessageFrame(limits: MessageLimits): number {
  const others = JSON_PER_UNIT * OTHER_STRINGS + FIXED;
  const message = JSON_PER_UNIT * (limits.MAX_MESSAGE_LENGTH + ATTACHMENTS * ATTACHMENT_UNITS) + others;
  const system = (2 * JSON_PER_UNIT + 1) * SYSTEM_CHANGE_UNITS + others;
  return Math.max(message, system) + REACTION_BYTES * limits.MAX_REACTIONS_PER_MESSAGE;
}

/**
 * One member of a `receipts` frame, as JSON: `{"user_id":"…","delivered":…,"read":…},`, a user id the
 * server made (20 bytes) and two seqs (16 digits at most).
 */
export const RECEIPT_BYTES = '{"user_id":"","delivered":,"read":},'.length + 20 + 2 * 16;

/**
 * The largest `receipts` frame a resume is sent (dispatch.ts): a group's every member's positions (a
 * dm's two; a channel's the user's own alone), with at most MAX_GROUP_MEMBERS members. Not counted: a
 * group that was larger before the bound (or under a larger one), which keeps its members.
 */
export function largestReceiptsFrame(limits: Pick<FrameLimits, "MAX_GROUP_MEMBERS">): number {
  return FIXED + RECEIPT_BYTES * limits.MAX_GROUP_MEMBERS;
}

/** The largest frame of any kind these limits allow: a message's or a receipts frame. */
export function largestFrame(limits: FrameLimits): number {
  return Math.max(largestMessageFrame(limits), largestReceiptsFrame(limits));
}

/**
 * The least WS_BACKPRESSURE_LIMIT for these limits: twice the largest frame. A paced catch-up keeps a
 * socket's queue under three eighths of the limit plus one frame (pacing.ts), so a largest frame then
 * still leaves an eighth of the limit for the live frames published meanwhile.
 */
export function leastBackpressureLimit(limits: FrameLimits): number {
  return 2 * largestFrame(limits);
}
