// Password policy: length bounds and a shipped list of common passwords.

import commonList from "./common-passwords.txt" with { type: "text" };
import { AppError } from "./errors.ts";

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 256;

const COMMON = new Set(
  (commonList as string)
    .split("\n")
    .map((l) => l.trim().toLowerCase())
    .filter(Boolean),
);

export function isCommonPassword(password: string): boolean {
  return COMMON.has(password.toLowerCase());
}

/** Throws 422 weak_password with the reason. Length counts characters (code points), not bytes. */
export function checkPasswordStrength(password: string, context: { email?: string; username?: string } = {}) {
  const length = [...password].length;
  if (length < PASSWORD_MIN) {
    throw new AppError("weak_password", `password must be at least ${PASSWORD_MIN} characters`);
  }
  if (length > PASSWORD_MAX) {
    throw new AppError("weak_password", `password must be at most ${PASSWORD_MAX} characters`);
  }
  if (isCommonPassword(password)) {
    throw new AppError("weak_password", "password is too common");
  }
  const lower = password.toLowerCase();
  if ((context.username && lower === context.username) || (context.email && lower === context.email)) {
    throw new AppError("weak_password", "password must not be the username or email");
  }
}
