// Conversations: create (dm, group, channel), list, read, rename, delete, and membership.

import type { Config } from "../../config.ts";
import type { Clock } from "../../lib/clock.ts";
import { AppError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import { visibleName } from "../../lib/text.ts";
import type { Hub } from "../../realtime/hub.ts";
import {
  type ActivityCursor,
  type ConversationRecord,
  DuplicateError,
  GroupFullError,
  LastOwnerError,
  type NewConversation,
  type ParticipantRecord,
  type ParticipantRole,
  type Store,
} from "../../store/types.ts";
import { appendSystem, intoConversation } from "../messages/log.ts";
import { toMessageView } from "../messages/model.ts";
import { isManager, requireManager, requireMember } from "./access.ts";
import { memberCursor, memberPage } from "./member-page.ts";
import {
  type AddParticipant,
  type ConversationView,
  type CreateConversation,
  type ListOrder,
  type ParticipantView,
  toConversationView,
  toParticipantView,
  type UpdateConversation,
} from "./model.ts";

export interface ConversationDeps {
  config: Pick<Config, "MAX_GROUP_MEMBERS">;
  store: Store;
  clock: Clock;
  hub: Hub;
}

export type ConversationsService = ReturnType<typeof createConversationsService>;

/**
 * A list's cursor: where its last page ended, in its order's terms ("<last_activity>:<id>" by activity,
 * "id:<id>" by creation), so that a cursor given to the other order is refused rather than misread.
 */
function encodeCursor(c: ConversationRecord, order: ListOrder) {
  const at = order === "created" ? `id:${c.id}` : `${c.last_activity}:${c.id}`;
  return Buffer.from(at).toString("base64url");
}
const badCursor = () =>
  new AppError("validation_failed", "cursor: not a cursor from this API for this order", {
    details: { field: "cursor" },
  });
function decodeActivityCursor(cursor: string): ActivityCursor {
  const match = /^(\d{1,15}):([0-9a-z]{1,64})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!match) throw badCursor();
  return { last_activity: Number(match[1]), id: match[2] as string };
}
function decodeCreatedCursor(cursor: string): string {
  const match = /^id:([0-9a-z]{1,64})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!match) throw badCursor();
  return match[1] as string;
}

const byJoining = (a: ParticipantRecord, b: ParticipantRecord) =>
  a.joined_at - b.joined_at || (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0);

const member = (
  conversationId: string,
  userId: string,
  role: ParticipantRole,
  now: number,
  joinedSeq = 0,
): ParticipantRecord => ({
  conversation_id: conversationId,
  user_id: userId,
  role,
  joined_at: now,
  joined_seq: joinedSeq,
  // What came before the member did is history to them, not unread, and no message already read or
  // delivered to everyone becomes unread or undelivered again because someone joined.
  last_read_seq: joinedSeq,
  delivered_seq: joinedSeq,
  delivered_at: null,
  read_at: null,
});

/** The store's last-owner guard (LastOwnerError) as the API's 409 last_owner. */
const lastOwner =
  (message: string) =>
  (err: unknown): never => {
    if (err instanceof LastOwnerError) throw new AppError("last_owner", message);
    throw err;
  };

export function createConversationsService(deps: ConversationDeps) {
  const { store, clock, hub, config } = deps;

  /**
   * The members a viewer is shown, and the viewer's own row: every member of a dm or group; of a channel
   * its owners and admins and the viewer, by (joined_at, user_id). For a reader those are exactly their
   * peers there (store peersOf); an owner or admin pages through the readers (`participants` below). Read
   * by role and key: a channel of 10,000 readers is not read, nor sent, with each view of it.
   */
  async function shown(conversation: ConversationRecord, viewerId: string, known?: ParticipantRecord) {
    const id = conversation.id;
    if (conversation.conversation_type !== "channel") {
      const all = await store.conversations.participants(id);
      return { shown: all, me: all.find((p) => p.user_id === viewerId) };
    }
    const [managers, me] = await Promise.all([
      store.conversations.managers(id),
      known ?? store.conversations.participant(id, viewerId),
    ]);
    // The viewer's own row once, as read (a role changed between the two reads shows in one of them).
    const others = managers.filter((p) => p.user_id !== viewerId);
    return { shown: me ? [...others, me].sort(byJoining) : others, me: me ?? undefined };
  }

  async function view(
    conversation: ConversationRecord,
    viewerId: string,
    known?: ParticipantRecord,
  ): Promise<ConversationView> {
    const { shown: participants, me } = await shown(conversation, viewerId, known);
    const unread = me ? await store.messages.countUnread(conversation.id, me.last_read_seq, viewerId) : 0;
    return toConversationView(conversation, participants, unread);
  }

  async function publishSystem(
    conversationId: string,
    actorId: string,
    kind: "participant.added" | "participant.removed" | "participant.updated" | "conversation.updated",
    details: Record<string, unknown>,
  ) {
    const message = await appendSystem(deps, conversationId, actorId, { event: kind, ...details });
    hub.publish({
      kind,
      conversation_id: conversationId,
      seq: message.seq,
      message: toMessageView(message),
      ...details,
    });
  }

  /**
   * A change that concerns a channel's reader alone (added, removed, leaving), told to their own devices
   * and written nowhere: not in the log, which every member reads (the channel's readers are not shown
   * each other), nor to its other members (adding 10,000 readers one by one would be 50 million frames,
   * and 10,000 entries replayed to each of them). It takes no seq (0): the conversation's last_seq,
   * last_activity and every member's unread count stay as they were. An added reader's event carries
   * their joined_seq, where their part of the log starts (the SDK resumes from it). The fanout moves their
   * sockets in or out of the conversation on every node, as for any member's add or removal.
   */
  function tellReader(
    conversationId: string,
    actorId: string,
    kind: "participant.added" | "participant.removed",
    details: { user_id: string } & Record<string, unknown>,
  ) {
    hub.publish({ kind, conversation_id: conversationId, seq: 0, ...details, by: actorId, to_self: true });
  }

  return {
    async create(
      input: CreateConversation,
      creatorId: string,
    ): Promise<{ created: boolean; conversation: ConversationView }> {
      const others = [...new Set(input.participant_ids.filter((id) => id !== creatorId))];
      if (input.conversation_type === "dm") {
        if (others.length !== 1) {
          throw new AppError(
            "validation_failed",
            "participant_ids: a dm has exactly two distinct participants",
            {
              details: { field: "participant_ids" },
            },
          );
        }
      }
      // Every view of a group lists its members: a group has a size (a channel, whose views do not, has none).
      if (input.conversation_type === "group" && others.length + 1 > config.MAX_GROUP_MEMBERS) {
        throw new AppError(
          "validation_failed",
          `participant_ids: a group has at most ${config.MAX_GROUP_MEMBERS} members, its creator among them (MAX_GROUP_MEMBERS)`,
          { details: { field: "participant_ids" } },
        );
      }
      const known = new Set(await store.users.existing(others));
      const unknown = others.filter((id) => !known.has(id));
      if (unknown.length > 0) {
        throw new AppError(
          "validation_failed",
          `participant_ids: unknown users ${unknown.slice(0, 5).join(", ")}`,
          {
            details: { field: "participant_ids" },
          },
        );
      }
      const now = clock.now();
      const dmKey = input.conversation_type === "dm" ? [creatorId, others[0]].sort().join(":") : null;
      if (dmKey) {
        const existing = await store.conversations.byDmKey(dmKey);
        if (existing) return { created: false, conversation: await view(existing, creatorId) };
      }
      const conversation: NewConversation = {
        id: newId(now),
        name: input.name === undefined ? null : visibleName(input.name, "name"),
        topic: input.topic ?? null,
        conversation_type: input.conversation_type,
        encrypted: input.encrypted ?? false,
        dm_key: dmKey,
        last_message_id: null,
        last_activity: now,
        last_seq: 0,
        message_count: 0,
        created_by: creatorId,
        created_at: now,
        updated_at: now,
      };
      const members = [
        member(conversation.id, creatorId, "owner", now),
        ...others.map((id) => member(conversation.id, id, "member", now)),
      ];
      try {
        await store.conversations.create(conversation, members);
      } catch (err) {
        // Two people opening the same dm at once: both get the one that won.
        if (err instanceof DuplicateError && dmKey) {
          const existing = await store.conversations.byDmKey(dmKey);
          if (existing) return { created: false, conversation: await view(existing, creatorId) };
        }
        throw err;
      }
      // Each member's sockets join it (`joining`, never sent); the frame names whom a view would show
      // (a channel's readers are not told of each other).
      const shownIds = (
        conversation.conversation_type === "channel" ? members.filter(isManager) : members
      ).map((m) => m.user_id);
      hub.publish({
        kind: "conversation.created",
        conversation_id: conversation.id,
        seq: 0,
        participant_ids: shownIds,
        member_count: members.length,
        joining: members.map((m) => m.user_id),
      });
      const created = { ...conversation, member_count: members.length };
      return { created: true, conversation: await view(created, creatorId, members[0]) };
    },

    /**
     * A page of the user's conversations. By activity, one that changes while a client pages moves above
     * its cursor and is not listed again; by creation nothing moves, so paging lists every one once.
     */
    async list(userId: string, limit: number, cursor?: string, order: ListOrder = "activity") {
      const rows =
        order === "created"
          ? await store.conversations.listForUserById(
              userId,
              limit + 1,
              cursor ? decodeCreatedCursor(cursor) : undefined,
            )
          : await store.conversations.listForUser(
              userId,
              limit + 1,
              cursor ? decodeActivityCursor(cursor) : undefined,
            );
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: await Promise.all(page.map((c) => view(c, userId))),
        next_cursor: rows.length > limit && last ? encodeCursor(last, order) : null,
      };
    },

    async get(id: string, userId: string) {
      const { conversation, me } = await requireMember(store, id, userId);
      return view(conversation, userId, me);
    },

    /**
     * A page of the conversation's members by user id. A member added or removed while a client pages
     * changes only the pages after its place: every member there throughout is listed once. A channel's
     * owners and admins only: its readers are not shown each other (403).
     */
    async participants(
      id: string,
      userId: string,
      limit: number,
      cursor?: string,
    ): Promise<{ items: ParticipantView[]; next_cursor: string | null }> {
      const after = memberCursor(cursor);
      const { conversation, me } = await requireMember(store, id, userId);
      if (conversation.conversation_type === "channel" && !isManager(me))
        throw new AppError("forbidden", "only a channel's owners and admins list its members");
      const { rows, next_cursor } = await memberPage(store, id, limit, after);
      return { items: rows.map(toParticipantView), next_cursor };
    },

    async update(id: string, userId: string, asked: UpdateConversation) {
      const input = asked.name === undefined ? asked : { ...asked, name: visibleName(asked.name, "name") };
      const { conversation, me } = await requireMember(store, id, userId);
      // A dm's two members are equals (its "owner" only opened it): either names it, as either deletes it.
      if (conversation.conversation_type !== "dm") requireManager(me, "change the conversation");
      // Only what differs is a change: a PUT that changes nothing takes no seq and records nothing.
      const changes = Object.fromEntries(
        Object.entries(input).filter(
          ([key, value]) => value !== undefined && value !== conversation[key as keyof typeof input],
        ),
      ) as UpdateConversation;
      if (Object.keys(changes).length === 0) return view(conversation, userId, me);
      const updated = await store.conversations.update(id, { ...changes, updated_at: clock.now() });
      if (!updated) throw new AppError("not_found", "conversation not found");
      await publishSystem(id, userId, "conversation.updated", { changes });
      return view((await store.conversations.byId(id)) ?? updated, userId, me);
    },

    async remove(id: string, userId: string) {
      const { conversation, me } = await requireMember(store, id, userId);
      if (conversation.conversation_type !== "dm" && me.role !== "owner") {
        throw new AppError("forbidden", "only an owner can delete the conversation");
      }
      await store.conversations.delete(id);
      hub.publish({ kind: "conversation.deleted", conversation_id: id, seq: 0, by: userId });
    },

    async addParticipant(id: string, userId: string, input: AddParticipant) {
      const { conversation, me } = await requireMember(store, id, userId);
      if (conversation.conversation_type === "dm") {
        throw new AppError("dm_participants_fixed", "a dm has exactly two participants");
      }
      requireManager(me, "add participants");
      const role = input.role ?? "member";
      if (role === "owner" && me.role !== "owner")
        throw new AppError("forbidden", "only an owner can add an owner");
      if (!(await store.users.byId(input.user_id))) {
        throw new AppError("validation_failed", "user_id: no such user", { details: { field: "user_id" } });
      }
      // Where the newcomer's live log starts (clients start it there, not at the conversation's start). Read
      // before the add, it may be a few changes early, never late: nothing after it is missed.
      const record = member(id, input.user_id, role, clock.now(), conversation.last_seq);
      // The size is checked by the store in the add's own atomic step: two adds at once cannot both take
      // the last place. A group already larger (made before the bound, or under a larger one) keeps its
      // members; it only takes no more.
      const maxMembers = conversation.conversation_type === "group" ? config.MAX_GROUP_MEMBERS : undefined;
      const added = await intoConversation(
        store.conversations.addParticipant(record, { maxMembers }).catch((err) => {
          if (err instanceof GroupFullError)
            throw new AppError(
              "group_full",
              `a group has at most ${err.maxMembers} members (MAX_GROUP_MEMBERS)`,
            );
          throw err;
        }),
      );
      if (!added) throw new AppError("already_member", "already a participant");
      if (conversation.conversation_type === "channel" && role === "member")
        tellReader(id, userId, "participant.added", {
          user_id: input.user_id,
          role,
          joined_seq: record.joined_seq,
        });
      else await publishSystem(id, userId, "participant.added", { user_id: input.user_id, role });
      return toParticipantView(record);
    },

    /** Owners change roles, including handing ownership over; the last owner cannot step down. */
    async setRole(id: string, userId: string, targetId: string, role: ParticipantRole) {
      const { conversation, me } = await requireMember(store, id, userId);
      if (conversation.conversation_type === "dm")
        throw new AppError("dm_participants_fixed", "a dm has no roles to change");
      if (me.role !== "owner") throw new AppError("forbidden", "only an owner can change roles");
      const target = await store.conversations.participant(id, targetId);
      if (!target) throw new AppError("not_found", "participant not found");
      if (target.role === role) return toParticipantView(target);
      // The last owner stays one: checked by the store in the same atomic step as the change, so that two
      // owners stepping down at the same moment cannot both pass.
      const updated = await store.conversations
        .setRole(id, targetId, role, { keepOwner: true })
        .catch(lastOwner("make another member owner first"));
      if (!updated) throw new AppError("not_found", "participant not found");
      // Always in the log, a channel's too: a role changes only between reader and staff (or within the
      // staff), and the staff are public, so a reader promoted (now shown in every view) or an admin
      // demoted (shown until now) is news to every member, and names nobody they were not shown.
      await publishSystem(id, userId, "participant.updated", { user_id: targetId, role });
      return toParticipantView(updated);
    },

    async removeParticipant(id: string, userId: string, targetId: string) {
      const { conversation, me } = await requireMember(store, id, userId);
      if (conversation.conversation_type === "dm") {
        throw new AppError("dm_participants_fixed", "a dm has exactly two participants; delete it instead");
      }
      const target = targetId === userId ? me : await store.conversations.participant(id, targetId);
      if (!target) throw new AppError("not_found", "participant not found");
      if (targetId !== userId) {
        requireManager(me, "remove others");
        if (target.role === "owner" && me.role !== "owner")
          throw new AppError("forbidden", "an admin cannot remove an owner");
      }
      // The last owner stays (the store checks it atomically with the removal, as for setRole). Two
      // removals of one member at once (a double tap on "leave", an admin at the same moment) both pass the
      // checks above; only the one that removed them records it.
      const removed = await store.conversations
        .removeParticipant(id, targetId, { keepOwner: true })
        .catch(lastOwner("the last owner cannot leave; make another member owner first"));
      if (!removed) throw new AppError("not_found", "participant not found");
      // A channel's reader as read above: a role changed between that read and the removal (rare) is told
      // as it was read, the staff's removal to everyone, a reader's to themself.
      if (conversation.conversation_type === "channel" && target.role === "member")
        tellReader(id, userId, "participant.removed", { user_id: targetId });
      else await publishSystem(id, userId, "participant.removed", { user_id: targetId });
    },
  };
}
