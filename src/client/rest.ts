// A small typed REST client over fetch: base URL, bearer token (refreshed and the call made again once
// when the server finds it expired), JSON in and out, and a ParleyError carrying the server's `status` and
// `code` for every error answer. Runs in Bun and browsers.

import { ParleyError } from "./errors.ts";
import type {
  ConversationView,
  CreateConversation,
  EventPage,
  MessagePage,
  MessageView,
  OwnUserView,
  Page,
  ParticipantView,
  Receipts,
  SendMessage,
  SessionView,
  SignInInput,
  SignUpInput,
  TokenResponse,
  UpdateUser,
  UserView,
} from "./types.ts";

export interface RestOptions {
  /** e.g. `https://chat.example.com`; a trailing slash is fine. */
  baseUrl: string;
  /**
   * The access token sent as `Authorization: Bearer`, asked for on every call (ParleyClient's refreshes one
   * close to its expiry first). Not asked for by the calls that take none: sign-up, sign-in, refresh.
   */
  token?: () => string | undefined | Promise<string | undefined>;
  /**
   * Asked once when a call is answered 401 `token_expired` (the clocks disagree, or a sleeping device's
   * timers did not run): a new access token, with which the call is made once more.
   */
  renew?: (expired: string) => Promise<string | undefined>;
  /**
   * Told when a call made with `token` is answered 401 `session_revoked`: the token's session is over
   * (revoked from another device, or signed out). ParleyClient ends it as it ends one whose refresh is
   * refused. Told before the call fails.
   */
  revoked?: (token: string, error: ParleyError) => void;
  /**
   * Told of each answer that describes the caller's own user: `users.update()` (the server lets users edit
   * only themselves) and `me()`. ParleyClient's session follows it.
   */
  self?: (user: OwnUserView) => void;
  /** Replaces the global fetch (tests, instrumentation). */
  fetch?: Fetch;
  /**
   * How long a call may take, answer read included, before it fails with `timeout`. Default 30 s: a link
   * that swallows packets would hold a call (and a refresh, and every call waiting for it) forever.
   */
  timeoutMs?: number;
}

export type Fetch = (input: URL, init: RequestInit) => Promise<Response>;

type Query = Record<string, string | number | undefined>;

/** The longest a refresh waits for its answer (see refresh()); ParleyClient tries again 5 s later. */
const REFRESH_TIMEOUT_MS = 10_000;
type Role = ParticipantView["role"];

export class RestClient {
  readonly baseUrl: string;
  private token: () => string | undefined | Promise<string | undefined>;
  private renew: ((expired: string) => Promise<string | undefined>) | undefined;
  private revoked: ((token: string, error: ParleyError) => void) | undefined;
  private self: ((user: OwnUserView) => void) | undefined;
  private fetcher: Fetch;
  private timeoutMs: number;
  /** The calls on their way, each with the way to give it up (cancel()). */
  private inFlight = new Set<(why: ParleyError) => void>();

  constructor(opts: RestOptions) {
    let url: URL;
    try {
      url = new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`baseUrl: not a URL: ${String(opts.baseUrl)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`baseUrl: expected http or https, got ${url.protocol}`);
    }
    this.baseUrl = url.href.replace(/\/+$/, "");
    const timeoutMs = opts.timeoutMs ?? 30_000;
    if (!(timeoutMs > 0 && Number.isFinite(timeoutMs)))
      throw new TypeError(`timeoutMs: expected a positive number of milliseconds, got ${timeoutMs}`);
    this.timeoutMs = timeoutMs;
    this.token = opts.token ?? (() => undefined);
    this.renew = opts.renew;
    this.revoked = opts.revoked;
    this.self = opts.self;
    this.fetcher = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /**
   * Gives up every call on its way made with the session's token: each fails with `closed` at once and its
   * fetch is aborted (a hung one would otherwise keep a script alive until its timeout); one still waiting
   * for its token (a refresh) is never sent. Calls that make
   * tokens (sign-in, refresh) finish, each within its timeout. Calls made afterwards go out as usual.
   */
  cancel() {
    for (const giveUp of [...this.inFlight]) giveUp(cancelled());
  }

  /** One call: JSON body out, JSON (or nothing, on 204) back; any non-2xx answer throws a ParleyError. */
  request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    return this.call<T>(method, path, body, query, true);
  }

  private async call<T>(
    method: string,
    path: string,
    body: unknown,
    query: Query | undefined,
    auth: boolean,
    deadlineMs = this.timeoutMs,
  ) {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    let json: string | undefined;
    try {
      json = body === undefined ? undefined : JSON.stringify(body);
    } catch (err) {
      // What the app gave is no JSON (a BigInt, a cycle): refused here, with a code, and nothing is sent.
      const why = err instanceof Error ? err.message : String(err);
      throw new ParleyError("bad_request", `${method} ${path}: the body cannot be sent as JSON (${why})`);
    }
    // A call waiting for its token (a refresh) when cancel() comes is on its way too: it fails at once
    // and is not sent when the token comes.
    const token = auth ? await this.cancellable(this.token()) : undefined;
    const sendWith = async (bearer: string | undefined) => {
      try {
        return await this.send<T>(method, url, path, json, bearer, auth, deadlineMs);
      } catch (err) {
        if (bearer && err instanceof ParleyError && err.status === 401 && err.code === "session_revoked")
          this.revoked?.(bearer, err);
        throw err;
      }
    };
    try {
      return await sendWith(token);
    } catch (err) {
      const expired = err instanceof ParleyError && err.status === 401 && err.code === "token_expired";
      if (!expired || !token || !this.renew) throw err;
      const fresh = await this.cancellable(this.renew(token));
      if (!fresh || fresh === token) throw err;
      return await sendWith(fresh);
    }
  }

  /** What `wait` answers, unless cancel() comes first: then it fails with `closed` at once. */
  private cancellable<V>(wait: V | Promise<V>): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      this.inFlight.add(reject);
      Promise.resolve(wait)
        .then(resolve, reject)
        .finally(() => this.inFlight.delete(reject));
    });
  }

  private async send<T>(
    method: string,
    url: URL,
    path: string,
    body: string | undefined,
    token: string | undefined,
    /**
     * A call made with the session's token, which cancel() may give up. One that makes tokens (sign-in,
     * refresh) is not: given up after the server spent the old refresh token, its new tokens would be lost
     * and the old one, used again later, would end the session as a reuse.
     */
    cancellable: boolean,
    deadlineMs: number,
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    // Aborted at the deadline (or by cancel()), and given up on then even if a fetch of the app's does not
    // heed the signal: the deadline promise rejects in the same step.
    const abort = new AbortController();
    let giveUp = (_why: ParleyError) => {};
    const deadline = new Promise<never>((_, reject) => {
      giveUp = (why) => {
        abort.abort();
        reject(why);
      };
    });
    const timer = setTimeout(
      () => giveUp(new ParleyError("timeout", `${method} ${path}: no answer within ${deadlineMs} ms`)),
      deadlineMs,
    );
    if (cancellable) this.inFlight.add(giveUp);
    let res: Response;
    let text: string;
    try {
      const exchange = async () => {
        const answer = await this.fetcher(url, { method, headers, body, signal: abort.signal });
        return { answer, text: await answer.text() };
      };
      ({ answer: res, text } = await Promise.race([exchange(), deadline]));
    } catch (err) {
      if (err instanceof ParleyError) throw err;
      throw new ParleyError("network", err instanceof Error ? err.message : "request failed");
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(giveUp);
    }
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ParleyError("bad_response", `${method} ${path}: the answer is not JSON`, res.status);
      }
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      if (error && typeof error.code === "string") {
        const { code, message, ...details } = error as Record<string, unknown>;
        // Some answers say when to try again only in the header (account_locked, a proxy's 429 or 503).
        const retryAfter = retryAfterSeconds(res.headers.get("retry-after"));
        if (details.retry_after === undefined && retryAfter !== undefined) details.retry_after = retryAfter;
        throw new ParleyError(code as string, String(message ?? code), res.status, details);
      }
      throw new ParleyError("bad_response", `${method} ${path}: HTTP ${res.status}`, res.status);
    }
    return parsed as T;
  }

  /** An answer about the caller's own user, passed on to `self`. */
  private told(user: OwnUserView): OwnUserView {
    this.self?.(user);
    return user;
  }

  // Accounts and sessions.
  signup(input: SignUpInput) {
    return this.call<TokenResponse>("POST", "/api/auth/signup", input, undefined, false);
  }
  signin(input: SignInInput) {
    return this.call<TokenResponse>("POST", "/api/auth/signin", input, undefined, false);
  }
  /**
   * Given up after at most REFRESH_TIMEOUT_MS: the server may have spent the token before the answer was
   * lost, and the refresh tried again must come back within its grace (REFRESH_REUSE_GRACE_SECONDS, 20 s)
   * to get new tokens rather than end the session as a reuse.
   */
  refresh(refreshToken: string) {
    const body = { refresh_token: refreshToken };
    const deadline = Math.min(this.timeoutMs, REFRESH_TIMEOUT_MS);
    return this.call<TokenResponse>("POST", "/api/auth/refresh", body, undefined, false, deadline);
  }
  async signout(): Promise<void> {
    await this.request<null>("POST", "/api/auth/signout");
  }
  async me() {
    return this.told(await this.request<OwnUserView>("GET", "/api/auth/me"));
  }
  sessions() {
    return this.request<{ items: SessionView[] }>("GET", "/api/auth/sessions");
  }
  /** Ends one of the user's sessions (another device's). */
  async deleteSession(id: string): Promise<void> {
    await this.request<null>("DELETE", `/api/auth/sessions/${enc(id)}`);
  }
  /**
   * Every other session of the user ends; this one goes on with its tokens. `currentPassword` undefined:
   * sets a password on an account that has none (the user's `has_password` is false), refused otherwise.
   */
  changePassword(currentPassword: string | undefined, newPassword: string) {
    const body = {
      ...(currentPassword === undefined ? {} : { current_password: currentPassword }),
      new_password: newPassword,
    };
    return this.request<{ status: "ok" }>("POST", "/api/auth/change-password", body);
  }
  /** Mails a sign-in link if the account exists; answers the same either way. */
  magicLink(email: string) {
    return this.call<{ status: "accepted" }>("POST", "/api/auth/magic-link", { email }, undefined, false);
  }
  /** The link's token for a new session (ParleyClient.adopt() takes it on). */
  verifyMagicLink(token: string, deviceName?: string) {
    const body = { token, device_name: deviceName };
    return this.call<TokenResponse>("POST", "/api/auth/magic-link/verify", body, undefined, false);
  }
  /**
   * Verifies the account's address with the token of the link mailed at sign-up: only from a session of
   * that account. Answers the user, `email_verified` true.
   */
  async verifyEmail(token: string) {
    return this.told(await this.request<OwnUserView>("POST", "/api/auth/verify-email", { token }));
  }
  /** Mails the account's address another verification link (409 already_verified once it is). */
  resendVerification() {
    return this.request<{ status: "accepted" }>("POST", "/api/auth/verify-email/resend");
  }

  // Users.
  readonly users = {
    list: (q: { q?: string; limit?: number; cursor?: string } = {}) =>
      this.request<Page<UserView>>("GET", "/api/users", undefined, q),
    get: (id: string) => this.request<UserView>("GET", `/api/users/${enc(id)}`),
    update: async (id: string, input: UpdateUser) =>
      this.told(await this.request<OwnUserView>("PUT", `/api/users/${enc(id)}`, input)),
  };

  // Conversations.
  readonly conversations = {
    create: (input: CreateConversation) =>
      this.request<ConversationView>("POST", "/api/conversations", input),
    /** A page: most recent activity first, or with `order: "created"` oldest first (see all()). */
    list: (q: { limit?: number; cursor?: string; order?: "activity" | "created" } = {}) =>
      this.request<Page<ConversationView>>("GET", "/api/conversations", undefined, q),
    /**
     * Every conversation of the caller, following cursors, oldest first: in that order none moves while
     * the pages are read (by activity, one that changes meanwhile moves above the cursor, never listed).
     */
    all: async (): Promise<ConversationView[]> => {
      const out: ConversationView[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.conversations.list({ limit: 100, cursor, order: "created" });
        out.push(...page.items);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      return out;
    },
    get: (id: string) => this.request<ConversationView>("GET", `/api/conversations/${enc(id)}`),
    update: (id: string, input: { name?: string; topic?: string }) =>
      this.request<ConversationView>("PUT", `/api/conversations/${enc(id)}`, input),
    delete: async (id: string): Promise<void> => {
      await this.request<null>("DELETE", `/api/conversations/${enc(id)}`);
    },
    /**
     * A page of the members, by user id (`limit` ≤ 200, 50 by default): any member of a dm or group; in a
     * channel its owners and admins (a reader: 403 `forbidden`). A conversation's view carries a channel's
     * owners, admins and the caller only, and `member_count`.
     */
    participants: (id: string, q: { limit?: number; cursor?: string } = {}) =>
      this.request<Page<ParticipantView>>("GET", `/api/conversations/${enc(id)}/participants`, undefined, q),
    /**
     * Every member, following cursors: each member there throughout is listed once; one added or removed
     * meanwhile is listed if their place comes after the page read when the change was made.
     */
    allParticipants: async (id: string): Promise<ParticipantView[]> => {
      const out: ParticipantView[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.conversations.participants(id, { limit: 200, cursor });
        out.push(...page.items);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      return out;
    },
    addParticipant: (id: string, userId: string, role?: Role) =>
      this.request<ParticipantView>("POST", `/api/conversations/${enc(id)}/participants`, {
        user_id: userId,
        role,
      }),
    /** Promotes, demotes or hands over ownership (owner only). */
    setRole: (id: string, userId: string, role: Role) =>
      this.request<ParticipantView>("PUT", `/api/conversations/${enc(id)}/participants/${enc(userId)}`, {
        role,
      }),
    removeParticipant: async (id: string, userId: string): Promise<void> => {
      await this.request<null>("DELETE", `/api/conversations/${enc(id)}/participants/${enc(userId)}`);
    },
  };

  // Messages.
  readonly messages = {
    /** History, ascending by seq; `before`/`after` are exclusive bounds. */
    page: (conversationId: string, q: { before?: number; after?: number; limit?: number } = {}) =>
      this.request<MessagePage>("GET", `/api/conversations/${enc(conversationId)}/messages`, undefined, q),
    /**
     * Sends with a client_msg_id (a new one unless given). A send that fails without the server's answer
     * (`timeout`, `network`, `closed`, or a 5xx: a proxy's 502 or 504) may have been stored all the same:
     * its error's `details.client_msg_id` names it, and sending again with that id is safe (never stored
     * twice).
     */
    send: async (conversationId: string, input: SendMessage): Promise<MessageView> => {
      const body = { ...input, client_msg_id: input.client_msg_id ?? crypto.randomUUID() };
      try {
        return await this.request<MessageView>(
          "POST",
          `/api/conversations/${enc(conversationId)}/messages`,
          body,
        );
      } catch (err) {
        // No answer, or one that does not say whether it was stored (a 5xx: a proxy's 502 or 504 may come
        // after the server stored it).
        if (err instanceof ParleyError && (err.status === 0 || err.status >= 500))
          err.details.client_msg_id ??= body.client_msg_id;
        throw err;
      }
    },
    /** Every message changed after `after` (tombstones included), in the order of the changes. */
    events: (conversationId: string, q: { after?: number; limit?: number } = {}) =>
      this.request<EventPage>("GET", `/api/conversations/${enc(conversationId)}/events`, undefined, q),
    search: (conversationId: string, q: string, limit?: number) =>
      this.request<{ items: MessageView[] }>(
        "GET",
        `/api/conversations/${enc(conversationId)}/messages/search`,
        undefined,
        { q, limit },
      ),
    read: (conversationId: string, seq: number) =>
      this.request<{ last_read_seq: number }>("POST", `/api/conversations/${enc(conversationId)}/read`, {
        seq,
      }),
    edit: (messageId: string, content: string) =>
      this.request<MessageView>("PUT", `/api/messages/${enc(messageId)}`, { content }),
    delete: async (messageId: string): Promise<void> => {
      await this.request<null>("DELETE", `/api/messages/${enc(messageId)}`);
    },
    /** Adds (op "add") or removes an emoji reaction of the caller. */
    react: async (messageId: string, emoji: string, op: "add" | "remove" = "add"): Promise<void> => {
      if (op === "add")
        await this.request<unknown>("POST", `/api/messages/${enc(messageId)}/reactions`, { emoji });
      else await this.request<null>("DELETE", `/api/messages/${enc(messageId)}/reactions/${enc(emoji)}`);
    },
    /**
     * Where a message stands with the members it was sent to. A dm or group: `{items}`, every one of them.
     * A channel: `counts` for the whole channel (`recipients`, `delivered`, `read`) and `next_cursor` too;
     * its owners and admins get `items` a page at a time: `limit` members by user id (≤ 200, 50 by
     * default), those of them it was sent to (a page may hold fewer, even none, before the end); pass
     * `next_cursor` back as `cursor` until it is null. A reader gets their own entry alone.
     */
    receipts: (messageId: string, q: { limit?: number; cursor?: string } = {}) =>
      this.request<Receipts>("GET", `/api/messages/${enc(messageId)}/receipts`, undefined, q),
  };
}

const enc = encodeURIComponent;

function cancelled(): ParleyError {
  return new ParleyError("closed", "the client was closed");
}

/** A Retry-After header (delay-seconds or an HTTP date) as whole seconds from now, if it is one. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (!header) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
