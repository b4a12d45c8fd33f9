// A page of a conversation's members by user id, for every route that pages through them (the member list,
// a channel message's receipts): its query, its cursor and the read of one page, the same for each.

import { t } from "elysia";
import { AppError } from "../../lib/errors.ts";
import type { ParticipantRecord, Store } from "../../store/types.ts";

export const MEMBER_PAGE_DEFAULT = 50;

/** `limit` ≤ 200, MEMBER_PAGE_DEFAULT by default; `cursor` the one the page before answered. */
export const MemberPageQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 200, default: MEMBER_PAGE_DEFAULT })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});
export type MemberPageQuery = typeof MemberPageQuery.static;

/** A member page's cursor: the user id its last page ended at. */
const encodeMemberCursor = (userId: string) => Buffer.from(`user:${userId}`).toString("base64url");

/**
 * The user id a cursor names (undefined without one), checked before anything is read; 422 for any
 * string this API did not write.
 */
export function memberCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const match = /^user:([\x21-\x7e]{1,64})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  // Only the cursor's own spelling: base64url decoding passes over characters it does not know.
  if (!match || encodeMemberCursor(match[1] as string) !== cursor)
    throw new AppError("validation_failed", "cursor: not a cursor from this API", {
      details: { field: "cursor" },
    });
  return match[1] as string;
}

/**
 * Up to `limit` members after the user id `after` (store participantsPage: a range of its key), and the
 * cursor of the page after them, null when none follows. A member added or removed while a client pages
 * changes only the pages after its place: every member there throughout is listed once.
 */
export async function memberPage(
  store: Store,
  conversationId: string,
  limit: number,
  after: string | undefined,
): Promise<{ rows: ParticipantRecord[]; next_cursor: string | null }> {
  const rows = await store.conversations.participantsPage(conversationId, limit + 1, after);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    rows: page,
    next_cursor: rows.length > limit && last ? encodeMemberCursor(last.user_id) : null,
  };
}
