// Schemas of the users routes and the public shape of a user.

import { t } from "elysia";
import { iso, isoOrNull } from "../../lib/clock.ts";
import { Text } from "../../lib/text.ts";
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
  status: UserStatus,
  /** The user's own view only: the status they chose, shown whenever they are connected. */
  chosen_status: t.Optional(UserStatus),
  /**
   * The user's own view only: whether they have proved they own the email address (signed in by a magic
   * link), and whether the account has a password (none after that first sign-in removed one set by
   * someone who had not proved it, until they set one).
   */
  email_verified: t.Optional(t.Boolean()),
  has_password: t.Optional(t.Boolean()),
  last_seen: t.Union([t.String(), t.Null()]),
  created_at: t.String(),
  updated_at: t.String(),
});
export type UserView = typeof UserView.static;

export const UserList = t.Object({ items: t.Array(UserView), next_cursor: t.Union([t.String(), t.Null()]) });

export const ListUsersQuery = t.Object({
  q: t.Optional(t.String({ maxLength: 100 })),
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
 * The API shape of a user; the email, the status they chose, whether the email is verified and whether
 * there is a password are shown to the user themself only.
 */
export function toUserView(user: UserRecord, self: boolean): UserView {
  return {
    id: user.id,
    ...(self ? { email: user.email } : {}),
    username: user.username,
    display_name: user.display_name,
    status: user.status,
    ...(self
      ? {
          chosen_status: user.chosen_status,
          email_verified: user.email_verified_at !== null,
          has_password: user.password_hash !== null,
        }
      : {}),
    last_seen: isoOrNull(user.last_seen),
    created_at: iso(user.created_at),
    updated_at: iso(user.updated_at),
  };
}
