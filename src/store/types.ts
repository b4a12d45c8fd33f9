// The persistence port. Each feature adds a repository here; both adapters (sqlite/, mongo/) implement
// all of them and pass the one contract suite in test/store/contract.ts. Times are epoch milliseconds.

export type UserStatus = "online" | "away" | "offline" | "dnd";
export type UserRole = "user" | "admin";

export interface UserRecord {
  id: string;
  email: string; // lowercase
  username: string; // lowercase
  display_name: string;
  /**
   * null: the account has no password (it signs in by magic link until its owner sets one). A password
   * set at sign-up by someone who never proved the mailbox is removed when the mailbox's owner first signs
   * in by magic link (auth/service.ts).
   */
  password_hash: string | null;
  /**
   * When the owner of the email address first proved it (a magic link used, or the verification mailed at
   * sign-up posted from a session of the account); null until then.
   */
  email_verified_at: number | null;
  /** What everyone sees: offline while the user has no socket, else the status they chose. */
  status: UserStatus;
  /**
   * The status the user chose (presence_update, or PUT /api/users/{id}), "online" until they choose one:
   * what their status becomes whenever they connect, and stays while they are connected.
   */
  chosen_status: UserStatus;
  role: UserRole;
  last_seen: number | null;
  created_at: number;
  updated_at: number;
}

export type UserPatch = Partial<
  Pick<
    UserRecord,
    | "display_name"
    | "username"
    | "status"
    | "chosen_status"
    | "password_hash"
    | "email_verified_at"
    | "last_seen"
    | "role"
  >
> & {
  /**
   * When the profile changed. Presence writes (the status shown, last_seen, the status chosen) leave it
   * out: moved by them, it would tell anyone who may read the user, not only their peers, when they come
   * and go.
   */
  updated_at?: number;
};

/**
 * What a conditional update needs the record to hold when it is written (null matches null): checked and
 * written in one atomic step, so that a write made on what was read earlier cannot undo a change made
 * since (a sign-in's re-hash putting back a password just removed).
 */
export type UserCondition = Partial<Pick<UserRecord, "password_hash" | "email_verified_at">>;

export interface UserQuery {
  /** Prefix of username or display name, as nameKey (lib/text.ts) makes it: lowercase, NFC. */
  prefix?: string;
  /** Exclusive: only users whose username sorts after this one. */
  afterUsername?: string;
  limit: number;
}

export interface SessionRecord {
  id: string;
  user_id: string;
  device_name: string;
  user_agent: string;
  ip: string;
  created_at: number;
  last_seen_at: number;
  /** Absolute end of life: no refresh extends a session past this. */
  expires_at: number;
  revoked_at: number | null;
  /**
   * What proved who opened it: the password (sign-up, sign-in) or a magic link (the mailbox). Only a
   * session opened by a magic link sets an account's first password without the current one
   * (auth/service.ts: changePassword).
   */
  signed_in_by: SignInMethod;
}

export type SignInMethod = "password" | "magic_link";

export interface RefreshTokenRecord {
  hash: string;
  session_id: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  spent_at: number | null;
}

export type SpendResult =
  | { status: "ok"; token: RefreshTokenRecord }
  | { status: "spent"; token: RefreshTokenRecord }
  | { status: "missing" };

/**
 * A token mailed to an address, stored by its SHA-256 hash: a magic link (it signs in) or an email
 * verification (it proves the address of an account signed in). Each kind has its own table, so that
 * neither is ever taken for the other.
 */
export interface MailedTokenRecord {
  hash: string;
  user_id: string;
  email: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

/** Thrown by create/update when a unique field is taken. */
export class DuplicateError extends Error {
  constructor(readonly field: "email" | "username" | "dm") {
    super(`${field} already exists`);
    this.name = "DuplicateError";
  }
}

/** A member added to a conversation that holds its `maxMembers` already (addParticipant). */
export class GroupFullError extends Error {
  constructor(
    readonly conversationId: string,
    readonly maxMembers: number,
  ) {
    super(`conversation ${conversationId} has ${maxMembers} members or more`);
    this.name = "GroupFullError";
  }
}

/**
 * Thrown by a membership write asked to keep an owner (`keepOwner`) when it would leave the conversation
 * without one: the check and the write are one atomic step, so two owners stepping down at once cannot
 * both pass it.
 */
export class LastOwnerError extends Error {
  constructor(readonly conversationId: string) {
    super(`conversation ${conversationId} would have no owner left`);
    this.name = "LastOwnerError";
  }
}

/** Thrown by a write whose conversation does not exist (deleted while the write was on its way). */
export class MissingError extends Error {
  constructor(
    readonly what: "conversation",
    readonly id: string,
  ) {
    super(`${what} ${id} does not exist`);
    this.name = "MissingError";
  }
}

export interface UsersRepo {
  create(user: UserRecord): Promise<void>;
  byId(id: string): Promise<UserRecord | null>;
  byEmail(email: string): Promise<UserRecord | null>;
  byUsername(username: string): Promise<UserRecord | null>;
  /** Existing ids among `ids` (for membership checks by later features). */
  existing(ids: string[]): Promise<string[]>;
  /** Answers the new record; null when there is no such user, or `only` does not hold (nothing written). */
  update(id: string, patch: UserPatch, only?: UserCondition): Promise<UserRecord | null>;
  list(query: UserQuery): Promise<UserRecord[]>;
  /**
   * The user is connected: their status becomes the one they chose, in one atomic step (read and written
   * apart, a choice made meanwhile on another node would be overwritten by the one read before it, and
   * status would differ from chosen_status for good). Becoming offline, last seen `now`. Answers the new
   * record; null when there is no such user or their status was their choice already (nothing written).
   */
  showChosen(id: string, now: number): Promise<UserRecord | null>;
  /**
   * Every user whose status is not offline becomes offline, last seen `now` (updated_at left: a presence
   * write); returns how many. For the boot of a server that is the only node: no socket outlives its
   * process, so nobody is online at that moment.
   */
  allOffline(now: number): Promise<number>;
  /**
   * The ids of the users whose status is not offline. For a cluster whose Redis lost what its nodes keep
   * there: which of them no node holds any more is asked of Redis (broker.settle).
   */
  notOffline(): Promise<string[]>;
}

export interface SessionsRepo {
  create(session: SessionRecord): Promise<void>;
  byId(id: string): Promise<SessionRecord | null>;
  /** Sessions that are neither revoked nor past expires_at, newest first. */
  listActive(userId: string, now: number): Promise<SessionRecord[]>;
  touch(id: string, now: number): Promise<void>;
  /** Revokes one session; false if it was already revoked or does not exist. */
  revoke(id: string, now: number): Promise<boolean>;
  /** Revokes every live session of the user except `exceptId`; returns the revoked ids. */
  revokeAllForUser(userId: string, now: number, exceptId?: string): Promise<string[]>;
}

export interface RefreshTokensRepo {
  add(token: RefreshTokenRecord): Promise<void>;
  /**
   * Atomically marks the token spent. "ok": it was live and is now spent. "spent": it had been spent
   * before (a reuse). Two concurrent spends of one token: exactly one gets "ok".
   */
  spend(hash: string, now: number): Promise<SpendResult>;
}

export interface MailedTokensRepo {
  add(token: MailedTokenRecord): Promise<void>;
  /** Atomically marks a live, unused, unexpired token used and returns it; null otherwise. */
  consume(hash: string, now: number): Promise<MailedTokenRecord | null>;
  /** Marks every unused token of the user used (at `now`): none of them works any more. */
  revokeForUser(userId: string, now: number): Promise<void>;
}

export interface LockoutsRepo {
  /** Records a failed sign-in under `key`; returns the failures at or after `since`, this one included. */
  recordFailure(key: string, at: number, since: number): Promise<number>;
  clearFailures(key: string): Promise<void>;
  lock(key: string, until: number): Promise<void>;
  lockedUntil(key: string, now: number): Promise<number | null>;
}

export interface Store {
  readonly kind: "sqlite" | "mongo";
  users: UsersRepo;
  sessions: SessionsRepo;
  refreshTokens: RefreshTokensRepo;
  magicLinks: MailedTokensRepo;
  emailVerifications: MailedTokensRepo;
  lockouts: LockoutsRepo;
  conversations: ConversationsRepo;
  messages: MessagesRepo;
  /** Resolves when the store answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---- Conversations and their log (each change takes the conversation's next seq)

export type ConversationType = "dm" | "group" | "channel";
export type ParticipantRole = "owner" | "admin" | "member";
export type MessageType = "text" | "image" | "file" | "system";

export interface ConversationRecord {
  id: string;
  name: string | null;
  topic: string | null;
  conversation_type: ConversationType;
  encrypted: boolean;
  /** For a dm: the two user ids sorted and joined by ":" (unique); null otherwise. */
  dm_key: string | null;
  last_message_id: string | null;
  last_activity: number;
  /** The highest seq allocated in this conversation (0 before any). */
  last_seq: number;
  message_count: number;
  /**
   * How many members the conversation has: kept by the store in the same atomic step as each member added
   * or removed (never given by the caller), so that a conversation's size is read with it, not counted.
   */
  member_count: number;
  created_by: string;
  created_at: number;
  updated_at: number;
}

/** A conversation as it is created: its member_count comes from the members created with it. */
export type NewConversation = Omit<ConversationRecord, "member_count">;

export type ConversationPatch = Partial<Pick<ConversationRecord, "name" | "topic">> & { updated_at: number };

export interface ParticipantRecord {
  conversation_id: string;
  user_id: string;
  role: ParticipantRole;
  joined_at: number;
  /**
   * The conversation's last seq when the member was added (0 for its first members): their part of the
   * log starts after it, with the `system` message that added them.
   */
  joined_seq: number;
  /**
   * Never below joined_seq, nor is delivered_seq: what came before a member joined is history to them,
   * neither unread nor undelivered. The store keeps it so, raising positions given lower when a member is
   * created or added (receiptCounts counts on it).
   */
  last_read_seq: number;
  /** Highest seq this member has fetched or acknowledged. */
  delivered_seq: number;
  /** When delivered_seq / last_read_seq last moved (for "seen by"). */
  delivered_at: number | null;
  read_at: number | null;
}

/**
 * A member's row with what a resume needs of its conversation: its type, and where its receipts stand.
 */
export interface MembershipRecord extends ParticipantRecord {
  conversation_type: ConversationType;
  /**
   * Moves (up) whenever a member's delivered_seq or last_read_seq moves, and whenever a member is added or
   * removed, in a dm or a group: while it stays, every member's positions are as they were. Written after
   * the change it counts, so a read of the members made after reading it is at least as new. A channel
   * keeps none (0): its members' receipts are not told to each other.
   */
  receipts_version: number;
}

/** A member's position of one kind (delivered_seq or last_read_seq). */
export interface MemberPosition {
  user_id: string;
  seq: number;
}

/**
 * The two lowest delivered and read positions among a conversation's members, lowest first (ties by
 * user id): enough to say the status of any message (the lowest among the members other than its sender is
 * the first, unless the sender is that member, then the second) without reading every member.
 */
export interface PositionFloor {
  delivered: MemberPosition[];
  read: MemberPosition[];
}

/**
 * Where a message stands among the members it was sent to: those who joined before it (joined_seq below its
 * seq), its sender left out, and members who have left not counted; of them, how many have it delivered
 * (delivered_seq reached its seq) and how many have read it (last_read_seq did).
 */
export interface ReceiptCounts {
  recipients: number;
  delivered: number;
  read: number;
}

export interface Attachment {
  file_id: string;
  file_name: string;
  file_size: number;
  mime_type: string;
}

export interface Reaction {
  user_id: string;
  emoji: string;
}

export interface MessageRecord {
  id: string;
  conversation_id: string;
  sender_id: string;
  seq: number;
  version_seq: number;
  client_msg_id: string | null;
  content: string;
  message_type: MessageType;
  reply_to: string | null;
  attachments: Attachment[];
  reactions: Reaction[];
  /** The E2EE envelope; null until the encryption issue. */
  envelope: Record<string, unknown> | null;
  edited_at: number | null;
  deleted: boolean;
  created_at: number;
  updated_at: number;
}

/** Cursor for conversation lists: strictly before this (last_activity, id) pair. */
export interface ActivityCursor {
  last_activity: number;
  id: string;
}

export type AppendResult =
  | { status: "created"; message: MessageRecord }
  | { status: "duplicate"; message: MessageRecord };

export interface ConversationsRepo {
  /**
   * Creates the conversation with its participants (its member_count is their number, each user counted
   * once). A dm whose dm_key exists: DuplicateError("dm").
   */
  create(conversation: NewConversation, participants: ParticipantRecord[]): Promise<void>;
  byId(id: string): Promise<ConversationRecord | null>;
  byDmKey(dmKey: string): Promise<ConversationRecord | null>;
  /** The user's conversations, most recent activity first (ties by id descending). */
  listForUser(userId: string, limit: number, before?: ActivityCursor): Promise<ConversationRecord[]>;
  /**
   * The user's conversations by id ascending (ids sort by creation time), those after `afterId` when given:
   * an order no activity changes, to page through every one of them once while they change.
   */
  listForUserById(userId: string, limit: number, afterId?: string): Promise<ConversationRecord[]>;
  /** The ids of all the user's conversations, in no order (a socket subscribes to each when it opens). */
  idsForUser(userId: string): Promise<string[]>;
  /**
   * Every user who shares at least one conversation with the user, the user included; in no order. In a
   * channel its readers (members who are not owner or admin) are peers of its owners and admins only, not
   * of each other: a channel of thousands is a broadcast, not a room whose readers watch each other.
   */
  peersOf(userId: string): Promise<string[]>;
  /**
   * The user's memberships among these conversations (at most 1000 ids a call), in no order: one read
   * whatever their number. Conversations the user is not in, or that do not exist, are left out.
   */
  memberships(userId: string, ids: readonly string[]): Promise<MembershipRecord[]>;

  /**
   * Those of `ids` who are peers of the user, as peersOf has them (the user is their own), each once, in no
   * order: the users whose presence the user is shown. One call for a whole page of users, however many
   * (at most 1000 ids a call).
   */
  peersAmong(userId: string, ids: readonly string[]): Promise<string[]>;
  /** The last_seq of each of these conversations that exists (at most 1000 ids a call). */
  lastSeqs(ids: readonly string[]): Promise<Map<string, number>>;
  update(id: string, patch: ConversationPatch): Promise<ConversationRecord | null>;
  /** Deletes the conversation, its participants and its messages. */
  delete(id: string): Promise<void>;
  /** Every member, by (joined_at, user_id): a read of all of them, however many (see managers, page). */
  participants(conversationId: string): Promise<ParticipantRecord[]>;
  /**
   * The conversation's owners and admins, by (joined_at, user_id): found by role, in a few index entries
   * however many other members it has (a channel's view shows them, not its readers).
   */
  managers(conversationId: string): Promise<ParticipantRecord[]>;
  /**
   * Up to `limit` members by user id ascending, those after `afterUserId` when given: a page of the member
   * list read from the (conversation_id, user_id) key alone. A member added or removed while a client pages
   * changes only the pages after its place.
   */
  participantsPage(conversationId: string, limit: number, afterUserId?: string): Promise<ParticipantRecord[]>;
  participant(conversationId: string, userId: string): Promise<ParticipantRecord | null>;
  /**
   * The two lowest delivered_seq and last_read_seq among the conversation's members, with their user ids
   * (fewer with fewer members; none for an unknown conversation): one read of two members whatever the
   * number of members, where `participants` reads them all.
   */
  positionFloor(conversationId: string): Promise<PositionFloor>;
  /**
   * A message's receipts counted (its seq, its sender): from counts of ranges of the indexes of positions
   * and of joined_seq (receipt-counts.ts), never from every member's row. Read as one state of the members
   * (each change made meanwhile counted wholly or not at all) on SQLite, and on MongoDB where the deployment
   * has transactions. Zeros for an unknown conversation.
   */
  receiptCounts(conversationId: string, seq: number, senderId: string): Promise<ReceiptCounts>;
  /**
   * Adds a member; false when already a member. No such conversation (deleted meanwhile): MissingError.
   * With `maxMembers`, a conversation that has that many members or more takes no one (GroupFullError),
   * checked in the same atomic step as the add, so that adds at the same moment cannot pass it together.
   */
  addParticipant(participant: ParticipantRecord, options?: { maxMembers?: number }): Promise<boolean>;
  /**
   * Changes a member's role; null when not a member. With `keepOwner`, an owner's role changes only while
   * another owner remains (LastOwnerError otherwise), checked in the same atomic step.
   */
  setRole(
    conversationId: string,
    userId: string,
    role: ParticipantRole,
    options?: { keepOwner?: boolean },
  ): Promise<ParticipantRecord | null>;
  /**
   * Removes a member; false when not a member. With `keepOwner`, an owner is removed only while another
   * owner remains (LastOwnerError otherwise), checked in the same atomic step.
   */
  removeParticipant(
    conversationId: string,
    userId: string,
    options?: { keepOwner?: boolean },
  ): Promise<boolean>;
  /** Moves last_read_seq forward only (and delivered_seq with it); returns the resulting record. */
  markRead(
    conversationId: string,
    userId: string,
    seq: number,
    now: number,
  ): Promise<ParticipantRecord | null>;
  /** Moves delivered_seq forward only; returns the resulting record. */
  markDelivered(
    conversationId: string,
    userId: string,
    seq: number,
    now: number,
  ): Promise<ParticipantRecord | null>;
}

export type MessagePatch = Partial<
  Pick<MessageRecord, "content" | "attachments" | "reactions" | "edited_at" | "deleted">
> & {
  updated_at: number;
};
export type MessageChange = MessagePatch | ((current: MessageRecord) => MessagePatch | null);

export interface MessagesRepo {
  /**
   * Allocates the conversation's next seq atomically and stores the message built for it (seq and
   * version_seq set to it), updating last_seq, last_message_id, last_activity and message_count.
   * A message with the same (conversation_id, sender_id, client_msg_id) already stored: "duplicate"
   * with that message, and nothing is allocated or stored. No such conversation: MissingError.
   */
  append(message: Omit<MessageRecord, "seq" | "version_seq">): Promise<AppendResult>;
  /**
   * Allocates the next seq as the message's version_seq and applies the change in the same atomic step
   * (edit, delete, reaction change). A function computes the patch from the current record, so that
   * read-modify-write (reactions, "not if deleted") cannot lose a concurrent change; it returns null to
   * change nothing (no seq is taken). Answers the resulting record; null when the message does not exist.
   */
  change(id: string, change: MessageChange): Promise<MessageRecord | null>;
  byId(id: string): Promise<MessageRecord | null>;
  /** The message the sender stored in the conversation under this client_msg_id (as append finds it). */
  byClientId(conversationId: string, senderId: string, clientMsgId: string): Promise<MessageRecord | null>;
  /** Ascending by seq. before/after are exclusive bounds; with neither, the latest `limit`. */
  page(
    conversationId: string,
    opts: { before?: number; after?: number; limit: number },
  ): Promise<MessageRecord[]>;
  /** Messages whose version_seq > after, ascending by version_seq, tombstones included. */
  events(conversationId: string, after: number, limit: number): Promise<MessageRecord[]>;
  /** Live (not deleted), non-system messages after `afterSeq` sent by anyone but `userId`. */
  countUnread(conversationId: string, afterSeq: number, userId: string): Promise<number>;
  /** Full-text search over content of live (not deleted), non-system messages, best match first. */
  search(conversationId: string, query: string, limit: number): Promise<MessageRecord[]>;
}
