// The largest frame a message can make on a socket, from MAX_MESSAGE_LENGTH: WS_BACKPRESSURE_LIMIT must
// leave room for it, or one legal message closes every receiver as a slow consumer (config.ts checks it).

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
 * The largest frame, in bytes, that a message (its send, edit, deletion or a reaction's change, live or
 * replayed) or a system message makes in any encoding, with content of at most `maxContentBytes` bytes of
 * UTF-8. Not counted: a message's reactions, which no setting bounds (each reaction adds to it).
 */
export function largestMessageFrame(maxContentBytes: number): number {
  const others = JSON_PER_UNIT * OTHER_STRINGS + FIXED;
  const message = JSON_PER_UNIT * (maxContentBytes + ATTACHMENTS * ATTACHMENT_UNITS) + others;
  const system = (2 * JSON_PER_UNIT + 1) * SYSTEM_CHANGE_UNITS + others;
  return Math.max(message, system);
}

/**
 * The least WS_BACKPRESSURE_LIMIT for MAX_MESSAGE_LENGTH: twice the largest frame. A paced catch-up keeps
 * a socket's queue under three eighths of the limit plus one frame (pacing.ts), so a largest frame then
 * still leaves an eighth of the limit for the live frames published meanwhile.
 */
export function leastBackpressureLimit(maxContentBytes: number): number {
  return 2 * largestMessageFrame(maxContentBytes);
}
