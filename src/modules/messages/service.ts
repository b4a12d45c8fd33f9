// Messages: send (idempotent by client_msg_id), edit, delete (tombstone), reactions, read state,
// history pages, catch-up events, receipts and search. Every change is published to the hub.

import type { Config } from "../../config.ts";
import { type Clock, isoOrNull } from "../../lib/clock.ts";
import { AppError, storageUnavailable } from "../../lib/errors.ts";
import type { Hub } from "../../realtime/hub.ts";
import type {
  ConversationRecord,
  MessageRecord,
  ParticipantRecord,
  PositionFloor,
  Reaction,
  Store,
} from "../../store/types.ts";
import { isManager, requireMember, requireMessage } from "../conversations/access.ts";
import { MEMBER_PAGE_DEFAULT, memberCursor, memberPage } from "../conversations/member-page.ts";
import type { MembershipCache } from "../conversations/membership.ts";
import type { Metrics } from "../metrics/service.ts";
import { append, draft } from "./log.ts";
import {
  type MessageView,
  type Receipt,
  type Receipts,
  type SendMessage,
  statusOf,
  toMessageView,
} from "./model.ts";
import { ReceiptBatch } from "./receipt-batch.ts";

export interface MessageDeps {
  config: Pick<
    Config,
    | "MAX_MESSAGE_LENGTH"
    | "MAX_FILE_SIZE"
    | "ALLOWED_FILE_TYPES"
    | "MAX_REACTIONS_PER_MESSAGE"
    | "MAX_REACTION_EMOJI"
    | "MAX_PAGE_BYTES"
  >;
  store: Store;
  clock: Clock;
  hub: Hub;
  membership: MembershipCache;
  metrics: Pick<Metrics, "messages">;
}

export type MessagesService = ReturnType<typeof createMessagesService>;

const invalid = (field: string, why: string) =>
  new AppError("validation_failed", `${field}: ${why}`, { details: { field } });

/** Content rules shared by send and edit: well-formed text, no NUL, within the byte limit. */
function checkContent(content: string, maxBytes: number, required: boolean) {
  if (required && content.trim() === "") throw invalid("content", "must not be empty");
  if (!content.isWellFormed()) throw invalid("content", "must be valid UTF-8 text");
  if (content.includes("\u0000")) throw invalid("content", "must not contain NUL characters");
  if (Buffer.byteLength(content) > maxBytes) throw invalid("content", `must be at most ${maxBytes} bytes`);
}

/** The longest emoji taken: one grapheme, such as a kiss with two skin tones (35 bytes), may pass 32. */
const MAX_EMOJI_BYTES = 64;
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
const oneGrapheme = (text: string) => {
  const all = graphemes.segment(text)[Symbol.iterator]();
  return !all.next().done && all.next().done === true;
};

/**
 * An emoji (or short reaction token): 1-32 bytes of text without whitespace, or one grapheme of up to
 * MAX_EMOJI_BYTES (the emoji keyboards offer sequences longer than 32 bytes). Not "." or "..": a reaction
 * is removed by naming it in a URL path, where those are dot segments, which every URL parser (fetch's
 * too, and %2E alike) resolves away: the removal of ".." would reach DELETE /api/messages/{id}.
 */
function checkEmoji(emoji: string) {
  const bytes = Buffer.byteLength(emoji);
  const sized = bytes >= 1 && (bytes <= 32 || (bytes <= MAX_EMOJI_BYTES && oneGrapheme(emoji)));
  if (!sized || /\s/u.test(emoji) || !emoji.isWellFormed() || emoji.includes("\u0000")) {
    throw invalid(
      "emoji",
      `must be 1-32 bytes of text without whitespace, or one emoji of up to ${MAX_EMOJI_BYTES}`,
    );
  }
  if (emoji === "." || emoji === "..")
    throw invalid("emoji", 'must not be "." or ".." (a URL cannot name it)');
}

/**
 * ALLOWED_FILE_TYPES as a test of a MIME type: a comma-separated list of types ("image/png"), whole
 * families ("image/" followed by a star) or a lone star for any; case and parameters do not count.
 */
export function fileTypes(allowed: string): (mimeType: string) => boolean {
  const entries = new Set(
    allowed
      .split(",")
      .map((e) => e.trim().toLowerCase())
      .filter(Boolean),
  );
  return (mimeType) => {
    const type = mimeType.split(";")[0]?.trim().toLowerCase() ?? "";
    const [family, subtype, ...rest] = type.split("/");
    if (!family || !subtype || rest.length > 0) return false;
    return entries.has("*") || entries.has(type) || entries.has(`${family}/*`);
  };
}

/** What an attachment says of its file must be within MAX_FILE_SIZE and ALLOWED_FILE_TYPES. */
function checkAttachments(
  attachments: SendMessage["attachments"] & {},
  maxBytes: number,
  allowed: (mimeType: string) => boolean,
) {
  for (const [i, a] of attachments.entries()) {
    if (a.file_size > maxBytes)
      throw invalid(`attachments.${i}.file_size`, `must be at most ${maxBytes} bytes (MAX_FILE_SIZE)`);
    if (!allowed(a.mime_type))
      throw invalid(`attachments.${i}.mime_type`, "not among the allowed file types (ALLOWED_FILE_TYPES)");
  }
}

export function createMessagesService(deps: MessageDeps) {
  const { store, clock, hub, config, membership, metrics } = deps;
  const receipts = new ReceiptBatch(hub);
  const allowedType = fileTypes(config.ALLOWED_FILE_TYPES);

  /**
   * The messages of a page that fit MAX_PAGE_BYTES, from its start (or its end, `fromEnd`), one at least:
   * a page of 1000 of the largest messages, each with its reactions, would be ~80 MB of JSON to build.
   */
  function fitting(page: MessageRecord[], fromEnd: boolean): MessageRecord[] {
    let bytes = 0;
    let n = 0;
    for (; n < page.length; n++) {
      bytes += viewBytes(page[fromEnd ? page.length - 1 - n : n] as MessageRecord);
      if (n > 0 && bytes > config.MAX_PAGE_BYTES) break;
    }
    if (n === page.length) return page;
    return fromEnd ? page.slice(page.length - n) : page.slice(0, n);
  }

  /**
   * Messages as the API shows them, each with its status: from the conversation's two lowest positions
   * of each kind (one read of a few index entries), not from every member (a channel of 10,000 members read
   * 10,000 rows for each page).
   */
  function views(messages: MessageRecord[], floor: PositionFloor) {
    return messages.map((m) => toMessageView(m, statusOf(m, floor)));
  }

  /**
   * A member's receipt: the members are told (their senders' ticks move). In a channel only the member's
   * own devices are (`to_self`): its readers are not told of each other, and the receipts of thousands of
   * readers told to every member would be traffic that grows with the square of their number; a channel's
   * receipts are read over REST (GET /api/messages/{id}/receipts). A dm's or group's are gathered for a
   * moment and told in one `receipts` frame (receipt-batch.ts): each member's ack is news to every other.
   */
  function publishReceipt(
    conversation: Pick<ConversationRecord, "id" | "conversation_type">,
    userId: string,
    position:
      | { kind: "receipt.delivered"; delivered_seq: number }
      | { kind: "receipt.read"; last_read_seq: number },
  ) {
    // A channel's: to the member's own devices, at once. A dm's or group's: to every member, gathered.
    if (conversation.conversation_type === "channel")
      hub.publish({ ...position, conversation_id: conversation.id, seq: 0, user_id: userId, to_self: true });
    else if (position.kind === "receipt.read")
      receipts.add(conversation.id, userId, "read", position.last_read_seq);
    else receipts.add(conversation.id, userId, "delivered", position.delivered_seq);
  }

  /**
   * Fetching messages counts as delivery to the one who fetched them, and the members are told, as of an
   * acknowledgement (their senders' ticks move now, not at their next fetch). A read does not fail for
   * that mark when storage cannot take it (a full disk, say): the next read writes it. Any other failure
   * is one.
   */
  async function delivered(
    conversation: ConversationRecord,
    me: ParticipantRecord,
    messages: MessageRecord[],
  ) {
    const top = messages.reduce((max, m) => Math.max(max, m.seq), 0);
    if (top <= me.delivered_seq) return;
    const updated = await store.conversations
      .markDelivered(conversation.id, me.user_id, top, clock.now())
      .catch((err) => {
        if (!storageUnavailable(err)) throw err;
        return null;
      });
    if (updated)
      publishReceipt(conversation, me.user_id, {
        kind: "receipt.delivered",
        delivered_seq: updated.delivered_seq,
      });
  }

  async function changed(
    kind: "message.edited" | "message.deleted" | "reaction.added" | "reaction.removed",
    message: MessageRecord,
    extra: Record<string, unknown> = {},
  ) {
    const floor = await store.conversations.positionFloor(message.conversation_id);
    const view = toMessageView(message, statusOf(message, floor));
    hub.publish({
      kind,
      conversation_id: message.conversation_id,
      seq: message.version_seq,
      message: view,
      ...extra,
    });
    return view;
  }

  /**
   * Whether a message's reactions take one more of `emoji`: every frame of the message carries the whole
   * list (frame-bound.ts counts MAX_REACTIONS_PER_MESSAGE of them), so it has a size, and a new emoji needs
   * a place among MAX_REACTION_EMOJI. A member's own reactions are among the message's different emoji, so
   * one member holds at most MAX_REACTION_EMOJI of them: no bound of their own is needed.
   */
  function reactionRoom(reactions: readonly Reaction[], emoji: string): "changed" | "full" | "emoji_full" {
    if (reactions.length >= config.MAX_REACTIONS_PER_MESSAGE) return "full";
    const kinds = new Set(reactions.map((r) => r.emoji));
    if (!kinds.has(emoji) && kinds.size >= config.MAX_REACTION_EMOJI) return "emoji_full";
    return "changed";
  }

  return {
    async send(
      conversationId: string,
      userId: string,
      input: SendMessage,
    ): Promise<{ created: boolean; message: MessageView }> {
      const me = await membership.require(conversationId, userId);
      if (me.conversation_type === "channel" && !isManager(me)) {
        // A post they made while they could, sent again (its answer lost): stored, as any resend says.
        const stored = input.client_msg_id
          ? await store.messages.byClientId(conversationId, userId, input.client_msg_id)
          : null;
        if (!stored) throw new AppError("forbidden", "only owners and admins post in a channel");
        metrics.messages.duplicates.inc();
        const floor = await store.conversations.positionFloor(conversationId);
        return { created: false, message: toMessageView(stored, statusOf(stored, floor)) };
      }
      const attachments = input.attachments ?? [];
      const content = input.content ?? "";
      checkContent(content, config.MAX_MESSAGE_LENGTH, attachments.length === 0);
      checkAttachments(attachments, config.MAX_FILE_SIZE, allowedType);
      if (input.reply_to) {
        const target = await store.messages.byId(input.reply_to);
        if (!target || target.conversation_id !== conversationId)
          throw invalid("reply_to", "no such message in this conversation");
      }
      const now = clock.now();
      const startedAt = performance.now();
      const result = await append(
        store,
        draft(
          {
            conversation_id: conversationId,
            sender_id: userId,
            content,
            message_type: input.message_type ?? (attachments.length > 0 ? "file" : "text"),
            client_msg_id: input.client_msg_id ?? null,
            reply_to: input.reply_to ?? null,
            attachments,
          },
          now,
        ),
      );
      metrics.messages.appendSeconds.observe((performance.now() - startedAt) / 1000);
      (result.status === "created" ? metrics.messages.stored : metrics.messages.duplicates).inc();
      // A message just created has reached nobody yet: "sent", with no need to read the members.
      const status =
        result.status === "created"
          ? "sent"
          : statusOf(result.message, await store.conversations.positionFloor(conversationId));
      const message = toMessageView(result.message, status);
      if (result.status === "created") {
        hub.publish({ kind: "message.created", conversation_id: conversationId, seq: message.seq, message });
      }
      return { created: result.status === "created", message };
    },

    async edit(messageId: string, userId: string, content: string) {
      const { conversation, me, message } = await requireMessage(store, messageId, userId);
      if (message.sender_id !== userId) throw new AppError("forbidden", "only the sender can edit a message");
      // An edit puts new words before every reader: in a channel, only those who may post there now.
      if (conversation.conversation_type === "channel" && !isManager(me))
        throw new AppError("forbidden", "only owners and admins post in a channel");
      if (message.message_type === "system")
        throw new AppError("forbidden", "system messages cannot be edited");
      checkContent(content, config.MAX_MESSAGE_LENGTH, message.attachments.length === 0);
      const now = clock.now();
      let deleted = false;
      // Checked again inside the atomic change: a delete that lands first must win.
      const next = await store.messages.change(messageId, (current) => {
        deleted = current.deleted;
        return current.deleted ? null : { content, edited_at: now, updated_at: now };
      });
      if (!next) throw new AppError("not_found", "message not found");
      if (deleted) throw new AppError("message_deleted", "the message was deleted");
      return changed("message.edited", next);
    },

    async remove(messageId: string, userId: string) {
      const { conversation, message, me } = await requireMessage(store, messageId, userId);
      // A group's or channel's owners and admins moderate it. A dm has no moderator: its "owner" is only
      // the one who opened it, no more entitled to the other's words than they are to the opener's.
      const moderates = conversation.conversation_type !== "dm" && isManager(me);
      if (message.sender_id !== userId && !moderates) {
        throw new AppError(
          "forbidden",
          conversation.conversation_type === "dm"
            ? "only the sender can delete a message in a dm"
            : "only the sender or an owner/admin can delete a message",
        );
      }
      // A system message is the log's record of a membership or conversation change, kept as it was.
      if (message.message_type === "system")
        throw new AppError("forbidden", "system messages cannot be deleted");
      let applied = false;
      // Assigned on every call: a store that retries (MongoDB) may call this more than once.
      const next = await store.messages.change(messageId, (current) => {
        applied = !current.deleted;
        if (!applied) return null;
        return { content: "", attachments: [], reactions: [], deleted: true, updated_at: clock.now() };
      });
      if (next && applied) await changed("message.deleted", next, { by: userId });
    },

    async react(
      messageId: string,
      userId: string,
      emoji: string,
      op: "add" | "remove",
    ): Promise<{ changed: boolean }> {
      checkEmoji(emoji);
      await requireMessage(store, messageId, userId);
      let outcome = "unchanged" as "changed" | "unchanged" | "deleted" | "full" | "emoji_full";
      // The reaction list is recomputed from the record inside the atomic change, so two people reacting
      // at the same moment both count, and two cannot both take the last place under a cap.
      const next = await store.messages.change(messageId, (current) => {
        outcome = "unchanged";
        // A deleted message takes no reaction; one taken off it is already gone (its reactions went with it).
        if (current.deleted) {
          if (op === "add") outcome = "deleted";
          return null;
        }
        const has = current.reactions.some((r) => r.user_id === userId && r.emoji === emoji);
        if (op === "add" ? has : !has) return null;
        if (op === "add") {
          outcome = reactionRoom(current.reactions, emoji);
          if (outcome !== "changed") return null;
        }
        outcome = "changed";
        const reactions =
          op === "add"
            ? [...current.reactions, { user_id: userId, emoji }]
            : current.reactions.filter((r) => !(r.user_id === userId && r.emoji === emoji));
        return { reactions, updated_at: clock.now() };
      });
      if (!next) throw new AppError("not_found", "message not found");
      if (outcome === "deleted") throw new AppError("message_deleted", "the message was deleted");
      if (outcome === "full")
        throw new AppError(
          "reaction_limit",
          `a message holds at most ${config.MAX_REACTIONS_PER_MESSAGE} reactions (MAX_REACTIONS_PER_MESSAGE)`,
        );
      if (outcome === "emoji_full")
        throw new AppError(
          "reaction_limit",
          `a message's reactions hold at most ${config.MAX_REACTION_EMOJI} different emoji (MAX_REACTION_EMOJI); add one of those`,
        );
      if (outcome === "unchanged") return { changed: false };
      await changed(op === "add" ? "reaction.added" : "reaction.removed", next, { user_id: userId, emoji });
      return { changed: true };
    },

    async page(
      conversationId: string,
      userId: string,
      q: { before?: number; after?: number; limit?: number },
    ) {
      const { conversation, me } = await requireMember(store, conversationId, userId);
      const limit = q.limit ?? 50;
      const rows = await store.messages.page(conversationId, {
        before: q.before,
        after: q.after,
        limit: limit + 1,
      });
      // One extra row tells whether more lie beyond the page, on the side the page moves towards.
      const hasMore = rows.length > limit;
      // With `after` the store reads forward from it (the extra row is the last); otherwise backward
      // from `before` or the end (the extra row is the first).
      const full =
        q.after !== undefined ? rows.slice(0, limit) : rows.slice(Math.max(0, rows.length - limit));
      // Held to MAX_PAGE_BYTES from the side it starts at: what it leaves out lies beyond it (has_more).
      const page = fitting(full, q.after === undefined);
      await delivered(conversation, me, page);
      const floor = await store.conversations.positionFloor(conversationId);
      return { items: views(page, floor), has_more: hasMore || page.length < full.length };
    },

    async events(conversationId: string, userId: string, after: number, limit: number) {
      const { conversation, me } = await requireMember(store, conversationId, userId);
      const rows = await store.messages.events(conversationId, after, limit + 1);
      const full = rows.slice(0, limit);
      const page = fitting(full, false);
      await delivered(conversation, me, page);
      const floor = await store.conversations.positionFloor(conversationId);
      return {
        items: views(page, floor),
        // Read before the page: a change that landed between the two is in the page, and the log is that far.
        last_seq: page.reduce((max, m) => Math.max(max, m.version_seq), conversation.last_seq),
        has_more: rows.length > limit || page.length < full.length,
      };
    },

    async markRead(conversationId: string, userId: string, seq: number) {
      const { conversation, me } = await requireMember(store, conversationId, userId);
      const target = Math.min(seq, conversation.last_seq);
      const updated = await store.conversations.markRead(conversationId, userId, target, clock.now());
      if (!updated) throw new AppError("not_found", "conversation not found");
      // Nothing moved (read again, or behind where it stands): nothing to tell anyone.
      if (updated.last_read_seq > me.last_read_seq)
        publishReceipt(conversation, userId, { kind: "receipt.read", last_read_seq: updated.last_read_seq });
      return { last_read_seq: updated.last_read_seq };
    },

    /** A socket's acknowledgement: delivered up to seq. */
    async acknowledge(conversationId: string, userId: string, seq: number) {
      const { conversation, me } = await requireMember(store, conversationId, userId);
      const target = Math.min(seq, conversation.last_seq);
      const updated = await store.conversations.markDelivered(conversationId, userId, target, clock.now());
      if (!updated) throw new AppError("not_found", "conversation not found");
      if (updated.delivered_seq > me.delivered_seq)
        publishReceipt(conversation, userId, {
          kind: "receipt.delivered",
          delivered_seq: updated.delivered_seq,
        });
      return { delivered_seq: updated.delivered_seq };
    },

    /**
     * Where a message stands with the members it was sent to. A dm or group: every one of them. A channel
     * (a broadcast: its readers are not shown each other, and it has thousands): its counts, read from
     * indexes (store receiptCounts), with a page of those it was sent to by user id for its owners and
     * admins (`limit`, `cursor`: as the member list's, and the same 422s), a reader's own entry alone for
     * a reader. A channel's answer reads no more than a page of its members.
     */
    async receipts(
      messageId: string,
      userId: string,
      page: { limit: number; cursor?: string } = { limit: MEMBER_PAGE_DEFAULT },
    ): Promise<Receipts> {
      const after = memberCursor(page.cursor);
      const { conversation, me, message } = await requireMessage(store, messageId, userId);
      // Members who joined after the message are not among those it was sent to.
      const sentTo = (p: ParticipantRecord) => p.user_id !== message.sender_id && p.joined_seq < message.seq;
      const receipt = (p: ParticipantRecord): Receipt => ({
        user_id: p.user_id,
        delivered_at: p.delivered_seq >= message.seq ? isoOrNull(p.delivered_at) : null,
        read_at: p.last_read_seq >= message.seq ? isoOrNull(p.read_at) : null,
      });
      if (conversation.conversation_type !== "channel") {
        const participants = await store.conversations.participants(conversation.id);
        return { items: participants.filter(sentTo).map(receipt) };
      }
      const [counts, listed] = await Promise.all([
        store.conversations.receiptCounts(conversation.id, message.seq, message.sender_id),
        isManager(me) ? memberPage(store, conversation.id, page.limit, after) : undefined,
      ]);
      if (!listed) return { items: sentTo(me) ? [receipt(me)] : [], next_cursor: null, counts };
      return { items: listed.rows.filter(sentTo).map(receipt), next_cursor: listed.next_cursor, counts };
    },

    async search(conversationId: string, userId: string, q: string, limit: number) {
      const { conversation } = await requireMember(store, conversationId, userId);
      if (conversation.encrypted)
        throw new AppError(
          "conversation_encrypted",
          "encrypted conversations cannot be searched on the server",
        );
      // The best matches that fit MAX_PAGE_BYTES: a search has no next page, and asks no more than 100.
      const found = fitting(await store.messages.search(conversationId, q, limit), false);
      return { items: views(found, await store.conversations.positionFloor(conversationId)) };
    },
  };
}

/**
 * About the bytes of a message's view as JSON: its content's UTF-8, its reactions and attachments, and
 * ~400 for its ids, times and keys (an estimate: a page is held to MAX_PAGE_BYTES, not counted exactly).
 */
function viewBytes(m: MessageRecord): number {
  let bytes = 400 + Buffer.byteLength(m.content) + 80 * m.reactions.length;
  for (const a of m.attachments) bytes += 80 + a.file_id.length + 3 * a.file_name.length + a.mime_type.length;
  if (m.envelope) bytes += JSON.stringify(m.envelope).length;
  return bytes;
}
