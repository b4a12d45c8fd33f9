// Request and response schemas of the auth routes, with their static types.

import { t } from "elysia";
import { PASSWORD_MAX } from "../../lib/passwords.ts";
import { Text } from "../../lib/text.ts";
import { OwnUserView, USERNAME_PATTERN } from "../users/model.ts";

/** Length checks beyond the policy are left to checkPasswordStrength so that they answer weak_password. */
const Password = t.String({ maxLength: PASSWORD_MAX * 4 });
const DeviceName = t.Optional(Text({ maxLength: 100 }));

export const SignUp = t.Object({
  email: t.String({ format: "email", maxLength: 254 }),
  username: t.String({ pattern: USERNAME_PATTERN }),
  password: Password,
  display_name: t.Optional(Text({ minLength: 1, maxLength: 100 })),
  device_name: DeviceName,
});
export type SignUp = typeof SignUp.static;

export const SignIn = t.Object({
  email: t.Optional(t.String({ minLength: 1, maxLength: 254 })),
  username: t.Optional(t.String({ minLength: 1, maxLength: 254 })),
  password: t.String({ maxLength: PASSWORD_MAX * 4 }),
  device_name: DeviceName,
});
export type SignIn = typeof SignIn.static;

export const Refresh = t.Object({ refresh_token: t.String({ minLength: 1, maxLength: 200 }) });

export const MagicLinkRequest = t.Object({ email: t.String({ format: "email", maxLength: 254 }) });

export const MagicLinkVerify = t.Object({
  token: t.String({ minLength: 1, maxLength: 200 }),
  device_name: DeviceName,
});

export const VerifyEmail = t.Object({ token: t.String({ minLength: 1, maxLength: 200 }) });

/** Without current_password only when the account has no password (the service checks it). */
export const ChangePassword = t.Object({
  current_password: t.Optional(t.String({ maxLength: PASSWORD_MAX * 4 })),
  new_password: Password,
});

export const TokenResponse = t.Object({
  user: OwnUserView,
  access_token: t.String(),
  refresh_token: t.String(),
  token_type: t.Literal("bearer"),
  expires_in: t.Integer(),
  session_id: t.String(),
});
export type TokenResponse = typeof TokenResponse.static;

export const SessionView = t.Object({
  id: t.String(),
  device_name: t.String(),
  user_agent: t.String(),
  ip: t.String(),
  created_at: t.String(),
  last_seen_at: t.String(),
  current: t.Boolean(),
});
export type SessionView = typeof SessionView.static;

export const SessionList = t.Object({ items: t.Array(SessionView) });
