// Accounts and sessions: sign-up (with the mail that proves its address), sign-in with lockout, rotating
// refresh tokens with reuse detection, magic links (which prove the mailbox), password change and sign-out.
// Plain logic over explicit dependencies; no HTTP here.

import type { Config } from "../../config.ts";
import { type Clock, iso } from "../../lib/clock.ts";
import { hashPassword, needsRehash, sha256, verifyPassword } from "../../lib/crypto.ts";
import { AppError, errorText, validation } from "../../lib/errors.ts";
import { newId, newSecret } from "../../lib/ids.ts";
import type { Logger } from "../../lib/logger.ts";
import { checkPasswordStrength } from "../../lib/passwords.ts";
import { isBlankName } from "../../lib/text.ts";
import type { TokenSigner } from "../../lib/tokens.ts";
import type { Mailer } from "../../mail/types.ts";
import {
  DuplicateError,
  type SessionRecord,
  type SignInMethod,
  type Store,
  type UserRecord,
} from "../../store/types.ts";
import { toOwnUserView } from "../users/model.ts";
import type { SessionView, SignIn, SignUp, TokenResponse } from "./model.ts";
import type { SessionCache } from "./session-cache.ts";

export interface AuthDeps {
  config: Pick<
    Config,
    | "REFRESH_TOKEN_EXPIRE_DAYS"
    | "REFRESH_REUSE_GRACE_SECONDS"
    | "SESSION_MAX_DAYS"
    | "LOCKOUT_THRESHOLD"
    | "LOCKOUT_MINUTES"
    | "MAGIC_LINK_TTL_MINUTES"
    | "EMAIL_VERIFICATION_TTL_HOURS"
    | "PUBLIC_URL"
    | "PASSWORD_HASH_MEMORY_KIB"
    | "PASSWORD_HASH_TIME"
  >;
  store: Store;
  clock: Clock;
  signer: TokenSigner;
  mailer: Mailer;
  sessions: SessionCache;
  logger: Logger;
}

/** Who is asking, as far as the transport knows. */
export interface ClientInfo {
  ip: string;
  userAgent: string;
}

const DAY = 24 * 3600_000;
const HOUR = 3600_000;
const MINUTE = 60_000;

/** What opening a session and issuing its tokens needs. */
export interface SessionDeps {
  config: Pick<Config, "REFRESH_TOKEN_EXPIRE_DAYS" | "SESSION_MAX_DAYS">;
  store: Store;
  clock: Clock;
  signer: TokenSigner;
}

async function issueTokens(
  deps: SessionDeps,
  user: UserRecord,
  session: SessionRecord,
): Promise<TokenResponse> {
  const { config, store, clock, signer } = deps;
  const now = clock.now();
  const refreshToken = newSecret(32);
  await store.refreshTokens.add({
    hash: sha256(refreshToken),
    session_id: session.id,
    user_id: user.id,
    created_at: now,
    expires_at: Math.min(now + config.REFRESH_TOKEN_EXPIRE_DAYS * DAY, session.expires_at),
    spent_at: null,
  });
  return {
    user: toOwnUserView(user),
    access_token: await signer.sign(user.id, session.id, now),
    refresh_token: refreshToken,
    token_type: "bearer",
    expires_in: signer.ttlSeconds,
    session_id: session.id,
  };
}

/**
 * A new device session, with its tokens, for a user who has proved who they are (`by` a password or a
 * magic link). The bench seeds its accounts through it too (bench/lib/seed.ts).
 */
export async function openSession(
  deps: SessionDeps,
  user: UserRecord,
  client: ClientInfo,
  by: SignInMethod,
  deviceName?: string,
): Promise<TokenResponse> {
  const now = deps.clock.now();
  const session: SessionRecord = {
    id: newId(now),
    user_id: user.id,
    device_name: deviceName?.trim() || "unknown device",
    user_agent: client.userAgent.slice(0, 300),
    ip: client.ip,
    created_at: now,
    last_seen_at: now,
    expires_at: now + deps.config.SESSION_MAX_DAYS * DAY,
    revoked_at: null,
    signed_in_by: by,
  };
  await deps.store.sessions.create(session);
  return issueTokens(deps, user, session);
}

export type AuthService = ReturnType<typeof createAuthService>;

export function createAuthService(deps: AuthDeps) {
  const { config, store, clock } = deps;
  // Unknown accounts are checked against this hash so that they cost the same time as known ones.
  const dummyHash = hashPassword(newSecret(16), config);
  // Mail goes out after the answer (magic links, verifications); shutdown waits for these.
  const pending = new Set<Promise<void>>();

  /** Runs `send` after the answer; a failure is logged as `what`, with no token or address. */
  function mailLater(send: Promise<void>, what: string) {
    const job = send
      .catch((err: unknown) => {
        deps.logger.error({ err: errorText(err) }, `${what} mail failed`);
      })
      .finally(() => pending.delete(job));
    pending.add(job);
  }

  const link = (path: string, token: string) =>
    `${config.PUBLIC_URL.replace(/\/$/, "")}${path}?token=${token}`;

  /** Locks out by account when it exists and by the login name otherwise, so both behave alike. */
  const lockKey = (user: UserRecord | null, login: string) => (user ? `u:${user.id}` : `l:${login}`);

  function lockedOut(until: number, now: number): AppError {
    const retryAfter = Math.max(1, Math.ceil((until - now) / 1000));
    return new AppError("account_locked", "too many failed sign-ins; try again later", {
      headers: { "Retry-After": String(retryAfter) },
    });
  }

  async function lock(key: string, now: number): Promise<number> {
    const until = now + config.LOCKOUT_MINUTES * MINUTE;
    await store.lockouts.lock(key, until);
    await store.lockouts.clearFailures(key);
    return until;
  }

  /**
   * Checks a password under the lockout of `key`. Each check counts as a failure from before it starts
   * until it proves right: checking the lock and then counting failures after the (slow) hash let a burst
   * of sign-ins sent at once all pass the lock, and have every guess checked however many there were. So
   * the check numbered past LOCKOUT_THRESHOLD in the window is not made (the account locks), and the one
   * that reaches it locks the account if it fails.
   */
  async function passwordChecked(key: string, check: () => Promise<boolean>): Promise<boolean> {
    const now = clock.now();
    const until = await store.lockouts.lockedUntil(key, now);
    if (until !== null) throw lockedOut(until, now);
    const attempt = await store.lockouts.recordFailure(key, now, now - config.LOCKOUT_MINUTES * MINUTE);
    if (attempt > config.LOCKOUT_THRESHOLD) throw lockedOut(await lock(key, now), now);
    if (await check()) {
      await store.lockouts.clearFailures(key);
      return true;
    }
    if (attempt >= config.LOCKOUT_THRESHOLD) await lock(key, clock.now());
    return false;
  }

  /**
   * Ends every session of the user but `keep` (the gateway closes their sockets when the cache is told)
   * and every magic link not yet used.
   */
  async function endOtherSessions(userId: string, now: number, keep?: string) {
    deps.sessions.invalidate(await store.sessions.revokeAllForUser(userId, now, keep));
    await store.magicLinks.revokeForUser(userId, now);
  }

  /**
   * The first magic-link sign-in of an account whose address was never proved. Until now anyone could
   * have signed up with this address and chosen its password, and could still hold sessions: the address
   * becomes verified, the password goes (its owner sets one, with no current password, from the session
   * this opens), and every other session and unused link ends. Sessions end both before and after the
   * password goes: a sign-in whose password check straddles the change finds it changed and ends its own
   * session (signin), so none survives that was opened on the password. Answers null when another sign-in
   * by link took the account over first (two links used at once: the one that lost may have ended the
   * other's new session, and goes on as a sign-in of a verified account).
   */
  async function takeOver(
    user: UserRecord,
    client: ClientInfo,
    deviceName: string | undefined,
  ): Promise<TokenResponse | null> {
    const now = clock.now();
    await endOtherSessions(user.id, now);
    const proved = await store.users.update(
      user.id,
      { email_verified_at: now, password_hash: null, updated_at: now },
      { email_verified_at: null },
    );
    if (!proved) return null;
    const opened = await openSession(deps, proved, client, "magic_link", deviceName);
    await endOtherSessions(user.id, now, opened.session_id);
    deps.logger.info(
      { user_id: user.id, had_password: user.password_hash !== null },
      "email proved by a magic link: password removed and other sessions ended",
    );
    return opened;
  }

  async function findByLogin(login: string): Promise<UserRecord | null> {
    return login.includes("@") ? store.users.byEmail(login) : store.users.byUsername(login);
  }

  async function sendMagicLink(email: string) {
    const user = await store.users.byEmail(email);
    if (!user) return;
    const now = clock.now();
    const token = newSecret(32);
    await store.magicLinks.add({
      hash: sha256(token),
      user_id: user.id,
      email,
      created_at: now,
      expires_at: now + config.MAGIC_LINK_TTL_MINUTES * MINUTE,
      used_at: null,
    });
    await deps.mailer.send({
      to: email,
      subject: "Your Parley sign-in link",
      text:
        `Hello ${user.display_name},\n\nSign in to Parley with this link:\n\n${link("/auth/magic-link", token)}\n\n` +
        `It works once and expires in ${config.MAGIC_LINK_TTL_MINUTES} minutes. ` +
        "If you did not ask for it, ignore this mail.\n",
    });
  }

  /**
   * Mails the account's address a link that proves it once posted from a session of the account: whoever
   * posts it holds both the mailbox and the account (its password, at sign-up), so nothing is taken over.
   * A stranger who signed up with the address cannot post it (the mail is not theirs), and the mailbox's
   * owner cannot without the account: they sign in by magic link instead, which takes the account over.
   */
  async function sendVerification(user: UserRecord) {
    const now = clock.now();
    const token = newSecret(32);
    await store.emailVerifications.add({
      hash: sha256(token),
      user_id: user.id,
      email: user.email,
      created_at: now,
      expires_at: now + config.EMAIL_VERIFICATION_TTL_HOURS * HOUR,
      used_at: null,
    });
    await deps.mailer.send({
      to: user.email,
      subject: "Confirm your Parley email address",
      text:
        `Hello ${user.display_name},\n\nSomeone signed up for Parley as ${user.username} with this address. ` +
        `If it was you, confirm the address with this link, signed in to that account:\n\n` +
        `${link("/auth/verify-email", token)}\n\n` +
        `It works once and expires in ${config.EMAIL_VERIFICATION_TTL_HOURS} hours. If it was not you, ` +
        "ignore this mail: the account stays unconfirmed, and signing in to Parley by a sign-in link sent " +
        "to this address makes it yours and ends every session of whoever signed up.\n",
    });
  }

  return {
    async signup(input: SignUp, client: ClientInfo): Promise<TokenResponse> {
      const email = input.email.trim().toLowerCase();
      const username = input.username.toLowerCase();
      checkPasswordStrength(input.password, { email, username });
      const now = clock.now();
      const user: UserRecord = {
        id: newId(now),
        email,
        username,
        // None given, or one that shows nothing: the user is shown by their username.
        display_name: isBlankName(input.display_name ?? "") ? username : (input.display_name ?? "").trim(),
        password_hash: await hashPassword(input.password, config),
        // Signing up proves nothing about the mailbox: the first magic link used does (takeOver).
        email_verified_at: null,
        status: "offline",
        chosen_status: "online",
        role: "user",
        last_seen: null,
        created_at: now,
        updated_at: now,
      };
      try {
        await store.users.create(user);
      } catch (err) {
        if (err instanceof DuplicateError) {
          throw new AppError(
            err.field === "email" ? "email_taken" : "username_taken",
            `${err.field} is taken`,
          );
        }
        throw err;
      }
      // One mail per account made: an address signs up once (email_taken after that).
      mailLater(sendVerification(user), "email verification");
      return openSession(deps, user, client, "password", input.device_name);
    },

    async signin(input: SignIn, client: ClientInfo): Promise<TokenResponse> {
      const login = (input.email ?? input.username ?? "").trim().toLowerCase();
      if (!login)
        throw new AppError("validation_failed", "email or username is required", {
          details: { field: "email" },
        });
      const user = await findByLogin(login);
      // An account without a password is checked like a wrong one: same answer, same time, same lockout.
      const hash = user?.password_hash ?? null;
      const ok = await passwordChecked(lockKey(user, login), async () =>
        verifyPassword(input.password, hash ?? (await dummyHash)),
      );
      if (!user || hash === null || !ok) throw new AppError("invalid_credentials", "invalid credentials");
      const opened = await openSession(deps, user, client, "password", input.device_name);
      // The password may have changed or gone while it was being checked (a change, a takeover by the
      // address's owner, each of which ends the sessions there were): a session opened on the old one
      // after that ends at once. A re-hash of the same password (a concurrent sign-in) still lets it in.
      const latest = (await store.users.byId(user.id))?.password_hash ?? null;
      if (latest !== hash && (latest === null || !(await verifyPassword(input.password, latest)))) {
        await store.sessions.revoke(opened.session_id, clock.now());
        deps.sessions.invalidate([opened.session_id]);
        throw new AppError("invalid_credentials", "invalid credentials");
      }
      if (latest === hash && needsRehash(hash, config)) {
        const rehashed = await hashPassword(input.password, config);
        // Only over the hash it replaces: never puts back a password changed or removed meanwhile.
        await store.users.update(
          user.id,
          { password_hash: rehashed, updated_at: clock.now() },
          { password_hash: hash },
        );
      }
      return opened;
    },

    async refresh(refreshToken: string): Promise<TokenResponse> {
      const now = clock.now();
      const result = await store.refreshTokens.spend(sha256(refreshToken), now);
      if (result.status === "missing") throw new AppError("unauthorized", "invalid refresh token");
      const session = await store.sessions.byId(result.token.session_id);
      if (result.status === "spent") {
        // Back within seconds of being spent, on a live session: the answer to that spend was most likely
        // lost on the way (a dropped connection, a client that retried), and the client has no other
        // token to use. It gets new ones; the tokens that answer gave stay good too.
        const spentAt = result.token.spent_at ?? 0;
        if (
          session &&
          session.revoked_at === null &&
          session.expires_at > now &&
          result.token.expires_at > now &&
          now - spentAt < config.REFRESH_REUSE_GRACE_SECONDS * 1000
        ) {
          const user = await store.users.byId(session.user_id);
          if (!user) throw new AppError("unauthorized", "account no longer exists");
          deps.logger.info(
            { session_id: session.id, user_id: user.id },
            "refresh token retried within its grace",
          );
          return issueTokens(deps, user, session);
        }
        // A spent token coming back later means it was copied: end the session for both holders.
        if (session && (await store.sessions.revoke(session.id, now))) {
          deps.logger.warn({ session_id: session.id, user_id: session.user_id }, "refresh token reused");
        }
        deps.sessions.invalidate([result.token.session_id]);
        throw new AppError("refresh_token_reused", "refresh token was already used; session revoked");
      }
      if (!session || session.revoked_at !== null) throw new AppError("session_revoked", "session revoked");
      if (result.token.expires_at <= now || session.expires_at <= now) {
        throw new AppError("token_expired", "refresh token expired; sign in again");
      }
      const user = await store.users.byId(session.user_id);
      if (!user) throw new AppError("unauthorized", "account no longer exists");
      return issueTokens(deps, user, session);
    },

    /** Resolves at once; the link, if the account exists, is mailed in the background. */
    requestMagicLink(email: string) {
      mailLater(sendMagicLink(email.trim().toLowerCase()), "magic link");
    },

    /**
     * Mails the account's address another verification link, once `allow` (the caller's rate limits for
     * the address) lets it; 409 already_verified when the address is proved. Resolves before the mail goes.
     */
    async resendVerification(userId: string, allow: (email: string) => Promise<unknown>) {
      const user = await store.users.byId(userId);
      if (!user) throw new AppError("unauthorized", "account no longer exists");
      if (user.email_verified_at !== null) {
        throw new AppError("already_verified", "the email address is verified already");
      }
      await allow(user.email);
      mailLater(sendVerification(user), "email verification");
    },

    /**
     * The token of a verification mail, posted from a session of its account: the address becomes
     * verified, and nothing else changes (the password and sessions are those of the mailbox's owner).
     * A token of another account, or of an address the account no longer has, is invalid (and spent).
     */
    async verifyEmail(userId: string, token: string) {
      const now = clock.now();
      const proof = await store.emailVerifications.consume(sha256(token), now);
      const user = proof && proof.user_id === userId ? await store.users.byId(userId) : null;
      if (!proof || !user || user.email !== proof.email) {
        throw new AppError("invalid_token", "verification link is invalid, used or expired");
      }
      // Only while not verified: the first proof's time stays (a magic link may have come first).
      await store.users.update(
        userId,
        { email_verified_at: now, updated_at: now },
        { email_verified_at: null },
      );
    },

    async verifyMagicLink(token: string, client: ClientInfo, deviceName?: string): Promise<TokenResponse> {
      const link = await store.magicLinks.consume(sha256(token), clock.now());
      if (!link) throw new AppError("invalid_token", "magic link is invalid, used or expired");
      let user = await store.users.byId(link.user_id);
      if (user && user.email_verified_at === null) {
        const opened = await takeOver(user, client, deviceName);
        if (opened) return opened;
        user = await store.users.byId(link.user_id);
      }
      if (!user) throw new AppError("invalid_token", "magic link is invalid, used or expired");
      // An address proved before: whatever sessions and password there are, its owner made them.
      return openSession(deps, user, client, "magic_link", deviceName);
    },

    /**
     * `current` undefined: only an account without a password (its owner signed in by magic link and the
     * password nobody proved was removed) sets one without giving the current one, and only from a session
     * opened by a magic link. A session opened on the password a takeover is removing can outlive its
     * removal for a moment (it ends at the takeover's second round of revocations): the password has gone
     * by then, and without this rule the squatter who opened it could set one they know in that moment.
     */
    async changePassword(userId: string, sessionId: string, current: string | undefined, next: string) {
      const user = await store.users.byId(userId);
      if (!user) throw new AppError("unauthorized", "account no longer exists");
      const hash = user.password_hash;
      if (current === undefined) {
        if (hash !== null) throw validation("current_password", "required: the account has a password");
        const session = await store.sessions.byId(sessionId);
        if (!session || session.revoked_at !== null) throw new AppError("session_revoked", "session revoked");
        if (session.signed_in_by !== "magic_link") {
          throw new AppError(
            "magic_link_required",
            "a first password is set from a session opened by a magic link: sign in by magic link first",
          );
        }
      } else {
        // The current password is what stands between a stolen session and the account: guessing it here
        // counts as guessing it at sign-in, and a locked account's password is refused here too.
        const right = await passwordChecked(lockKey(user, user.email), async () =>
          verifyPassword(current, hash ?? (await dummyHash)),
        );
        if (!right || hash === null) throw new AppError("invalid_credentials", "current password is wrong");
      }
      checkPasswordStrength(next, { email: user.email, username: user.username });
      const nextHash = await hashPassword(next, config);
      if (hash === null) {
        // Nothing to check but the session: read it again from the store, not the cache that may not have
        // heard yet of a takeover that ended it (on another node) and removed the password.
        const session = await store.sessions.byId(sessionId);
        if (!session || session.revoked_at !== null) throw new AppError("session_revoked", "session revoked");
      }
      const now = clock.now();
      // Only over the password checked: one changed or removed meanwhile (another device, a takeover by the
      // address's owner) is not overwritten.
      const changed = await store.users.update(
        userId,
        { password_hash: nextHash, updated_at: now },
        { password_hash: hash },
      );
      if (!changed) {
        throw hash === null
          ? validation("current_password", "required: the account has a password")
          : new AppError("invalid_credentials", "current password is wrong");
      }
      // A link asked for before the change signs in no more than the sessions it ended do.
      await endOtherSessions(userId, now, sessionId);
    },

    async signout(sessionId: string) {
      await store.sessions.revoke(sessionId, clock.now());
      deps.sessions.invalidate([sessionId]);
    },

    async listSessions(userId: string, currentId: string): Promise<SessionView[]> {
      return (await store.sessions.listActive(userId, clock.now())).map((s) => ({
        id: s.id,
        device_name: s.device_name,
        user_agent: s.user_agent,
        ip: s.ip,
        created_at: iso(s.created_at),
        last_seen_at: iso(s.last_seen_at),
        current: s.id === currentId,
      }));
    },

    async deleteSession(userId: string, sessionId: string) {
      const session = await store.sessions.byId(sessionId);
      if (!session || session.user_id !== userId || session.revoked_at !== null) {
        throw new AppError("not_found", "session not found");
      }
      await store.sessions.revoke(sessionId, clock.now());
      deps.sessions.invalidate([sessionId]);
    },

    /** Waits for magic-link mail still being sent (graceful shutdown, tests). */
    async settled() {
      await Promise.all([...pending]);
    },
  };
}
