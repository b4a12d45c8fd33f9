// /api/auth: sign-up, sign-in, refresh, magic links, email verification, password change, sign-out, me,
// device sessions.

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";
import { sha256 } from "../../lib/crypto.ts";
import { addressKey, requestContext } from "../../plugins/context.ts";
import { ErrorResponse } from "../../plugins/openapi.ts";
import { OwnUserView } from "../users/model.ts";
import { authGuard } from "./guard.ts";
import {
  ChangePassword,
  MagicLinkRequest,
  MagicLinkVerify,
  Refresh,
  SessionList,
  SignIn,
  SignUp,
  TokenResponse,
  VerifyEmail,
} from "./model.ts";

/**
 * The limiter key of a mail address: hashed, since the key is stored in Redis and an address is personal
 * data. Magic links and verification mails spend from the same bucket, so that together they mail an
 * address at most MAGIC_LINK_PER_HOUR times an hour.
 */
const mailKey = (email: string) => `email:${sha256(email.trim().toLowerCase())}`;

const Accepted = t.Object({ status: t.Literal("accepted") });

export function authController(deps: Deps) {
  const { auth, limiters, users } = deps;
  const client = (ip: string, headers: Record<string, string | undefined>) => ({
    ip,
    userAgent: headers["user-agent"] ?? "",
  });
  return new Elysia({ prefix: "/api/auth", tags: ["auth"] })
    .use(requestContext(deps.config))
    .use(authGuard(deps))
    .post(
      "/signup",
      async ({ body, clientIp, headers, set }) => {
        await limiters.check("signup", addressKey(clientIp));
        set.status = 201;
        return auth.signup(body, client(clientIp, headers));
      },
      { body: SignUp, parse: "json", response: { 201: TokenResponse, ...ErrorResponse } },
    )
    .post(
      "/signin",
      async ({ body, clientIp, headers }) => {
        await limiters.check("signin", addressKey(clientIp));
        return auth.signin(body, client(clientIp, headers));
      },
      { body: SignIn, parse: "json", response: { 200: TokenResponse, ...ErrorResponse } },
    )
    .post(
      "/refresh",
      async ({ body, clientIp }) => {
        await limiters.check("refresh", addressKey(clientIp));
        return auth.refresh(body.refresh_token);
      },
      { body: Refresh, parse: "json", response: { 200: TokenResponse, ...ErrorResponse } },
    )
    .post(
      "/magic-link",
      async ({ body, clientIp, set }) => {
        await limiters.check("magic_link_ip", addressKey(clientIp));
        await limiters.check("magic_link_email", mailKey(body.email));
        auth.requestMagicLink(body.email);
        set.status = 202;
        return { status: "accepted" as const };
      },
      {
        body: MagicLinkRequest,
        parse: "json",
        response: { 202: Accepted, ...ErrorResponse },
      },
    )
    .post(
      "/magic-link/verify",
      async ({ body, clientIp, headers }) => {
        await limiters.check("magic_link_ip", addressKey(clientIp));
        return auth.verifyMagicLink(body.token, client(clientIp, headers), body.device_name);
      },
      { body: MagicLinkVerify, parse: "json", response: { 200: TokenResponse, ...ErrorResponse } },
    )
    .post(
      "/verify-email",
      async ({ body, clientIp, userId }) => {
        await limiters.check("magic_link_ip", addressKey(clientIp));
        await auth.verifyEmail(userId, body.token);
        return users.own(userId);
      },
      { auth: true, body: VerifyEmail, parse: "json", response: { 200: OwnUserView, ...ErrorResponse } },
    )
    .post(
      "/verify-email/resend",
      async ({ clientIp, userId, set }) => {
        await auth.resendVerification(userId, async (email) => {
          await limiters.check("magic_link_ip", addressKey(clientIp));
          await limiters.check("magic_link_email", mailKey(email));
        });
        set.status = 202;
        return { status: "accepted" as const };
      },
      { auth: true, response: { 202: Accepted, ...ErrorResponse } },
    )
    .post(
      "/change-password",
      async ({ body, userId, sessionId }) => {
        await limiters.check("signin", `user:${userId}`);
        await auth.changePassword(userId, sessionId, body.current_password, body.new_password);
        return { status: "ok" as const };
      },
      {
        auth: true,
        body: ChangePassword,
        parse: "json",
        response: { 200: t.Object({ status: t.Literal("ok") }), ...ErrorResponse },
      },
    )
    .post(
      "/signout",
      async ({ sessionId, set }) => {
        await auth.signout(sessionId);
        set.status = 204;
      },
      { auth: true },
    )
    .get("/me", ({ userId }) => users.own(userId), {
      auth: true,
      response: { 200: OwnUserView, ...ErrorResponse },
    })
    .get(
      "/sessions",
      async ({ userId, sessionId }) => ({ items: await auth.listSessions(userId, sessionId) }),
      {
        auth: true,
        response: { 200: SessionList, ...ErrorResponse },
      },
    )
    .delete(
      "/sessions/:id",
      async ({ params, userId, set }) => {
        await auth.deleteSession(userId, params.id);
        set.status = 204;
      },
      { auth: true, params: t.Object({ id: t.String({ maxLength: 64 }) }) },
    );
}
