// Schemas of the users routes and the public shape of a user.

import { t } from "elysia";
import { iso, isoOrNull } from "../../lib/clock.ts";
import { Characters, Text } from "../../lib/text.ts";
import type { UserRecord } from "../../store/types.ts";

/** Usernames are 3-32 of [a-z0-9_.], case-insensitive and stored lowercase. */
export const USERNAME_PATTERN = "^[A-Za-z0-9_.]{3,32}$";

export const UserStatus = t.Union([
  t.Literal("online"),
  t.Literal("away"),
  t.Literal("offline"),
  t.Literal("dnd"),
]);

export const UserView = t.Object({
  id: t.String(),
  email: t.Optional(t.String()),
  username: t.String(),
  display_name: t.String(),
  /**
   * Shown to the user and their peers only (those who share a conversation with them, two readers of one
   * channel not counting: the users their presence frames go to); null, "not shown", to anyone else.
   */
  // One flat union: nested, the OpenAPI document would list the four values as the only ones allowed.
  status: t.Union([...UserStatus.anyOf, t.Null()]),
  /** The user's own view only: the status they chose, shown whenever they are connected. */
  chosen_status: t.Optional(UserStatus),
  /**
   * The user's own view only: whether they have proved they own the email address (signed in by a magic
   * link, or posted the link mailed at sign-up from a session of the account), and whether the account has a password (none after that first sign-in removed one set by
   * someone who had not proved it, until they set one).
   */
  email_verified: t.Optional(t.Boolean()),
  has_password: t.Optional(t.Boolean()),
  /** Shown as `status` is: null when not shown, and when the user has not gone offline yet. */
  last_seen: t.Union([t.String(), t.Null()]),
  created_at: t.String(),
  updated_at: t.String(),
});
export type UserView = typeof UserView.static;

/** The user as they see themself (sign-up and sign-in, /api/auth/me, their own PUT): everything shown. */
export const OwnUserView = t.Object({
  ...UserView.properties,
  email: t.String(),
  status: UserStatus,
  chosen_status: UserStatus,
  email_verified: t.Boolean(),
  has_password: t.Boolean(),
});
export type OwnUserView = typeof OwnUserView.static;

export const UserList = t.Object({ items: t.Array(UserView), next_cursor: t.Union([t.String(), t.Null()]) });

export const ListUsersQuery = t.Object({
  q: t.Optional(Characters({ maxLength: 100 })),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});
export type ListUsersQuery = typeof ListUsersQuery.static;

export const UpdateUser = t.Object(
  {
    display_name: t.Optional(Text({ minLength: 1, maxLength: 100 })),
    username: t.Optional(t.String({ pattern: USERNAME_PATTERN })),
    status: t.Optional(UserStatus),
  },
  { additionalProperties: false },
);
export type UpdateUser = typeof UpdateUser.static;

export const UserIdParams = t.Object({ id: t.String({ maxLength: 64 }) });

/**
 * Who reads a user: the user themself, a peer of theirs (peersAmong in the store: whom their presence
 * frames go to), or anyone else.
 */
export type Viewer = "self" | "peer" | "other";

/**
 * The API shape of a user as `viewer` sees it: the email, the status they chose, whether the email is
 * verified and whether there is a password are shown to the user themself only; their status and
 * last_seen to them and their peers, null ("not shown") to anyone else, as the realtime side tells them.
 */
export function toUserView(user: UserRecord, viewer: Viewer): UserView {
  if (viewer === "self") return toOwnUserView(user);
  const shown = viewer === "peer";
  return {
    id: user.id,
    username: user.username,
    display_name: user.display_name,
    status: shown ? user.status : null,
    last_seen: shown ? isoOrNull(user.last_seen) : null,
    created_at: iso(user.created_at),
    updated_at: iso(user.updated_at),
  };
}

export function toOwnUserView(user: UserRecord): OwnUserView {
  return {
    id: user.id,
    email: user.email,
    username: user.username,
    display_name: user.display_name,
    status: user.status,
    chosen_status: user.chosen_status,
    email_verified: user.email_verified_at !== null,
    has_password: user.password_hash !== null,
    last_seen: isoOrNull(user.last_seen),
    created_at: iso(user.created_at),
    updated_at: iso(user.updated_at),
  };
}
