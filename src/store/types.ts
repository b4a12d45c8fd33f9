// The persistence port. Each feature adds a repository here; both adapters (sqlite/, mongo/) implement
// all of them and pass the one contract suite in test/store/contract.ts. Times are epoch milliseconds.

export type UserStatus = "online" | "away" | "offline" | "dnd";
export type UserRole = "user" | "admin";

export interface UserRecord {
  id: string;
  email: string; // lowercase
  username: string; // lowercase
  display_name: string;
  password_hash: string;
  status: UserStatus;
  role: UserRole;
  last_seen: number | null;
  created_at: number;
  updated_at: number;
}

export type UserPatch = Partial<
  Pick<UserRecord, "display_name" | "username" | "status" | "password_hash" | "last_seen" | "role">
> & { updated_at: number };

export interface UserQuery {
  /** Lowercase prefix of username or display name. */
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
}

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

export interface MagicLinkRecord {
  hash: string;
  user_id: string;
  email: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

/** Thrown by create/update when a unique field is taken. */
export class DuplicateError extends Error {
  constructor(readonly field: "email" | "username") {
    super(`${field} already exists`);
    this.name = "DuplicateError";
  }
}

export interface UsersRepo {
  create(user: UserRecord): Promise<void>;
  byId(id: string): Promise<UserRecord | null>;
  byEmail(email: string): Promise<UserRecord | null>;
  byUsername(username: string): Promise<UserRecord | null>;
  /** Existing ids among `ids` (for membership checks by later features). */
  existing(ids: string[]): Promise<string[]>;
  update(id: string, patch: UserPatch): Promise<UserRecord | null>;
  list(query: UserQuery): Promise<UserRecord[]>;
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

export interface MagicLinksRepo {
  add(link: MagicLinkRecord): Promise<void>;
  /** Atomically marks a live, unused, unexpired link used and returns it; null otherwise. */
  consume(hash: string, now: number): Promise<MagicLinkRecord | null>;
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
  magicLinks: MagicLinksRepo;
  lockouts: LockoutsRepo;
  /** Resolves when the store answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
