// The signed-in session's tokens, for ParleyClient: kept fresh (refreshed at `refreshAt` of their lifetime,
// and before use when close to their expiry), shared with the app's other clients through the store, and
// never spent twice: a refresh token presented again ends the session on the server (a reuse).

import { ParleyError } from "./errors.ts";
import { sessionEnd } from "./session-end.ts";
import type { Locks, Session, SessionStore } from "./session-store.ts";
import type { OwnUserView, TokenResponse } from "./types.ts";

/** Tokens closer than this to their expiry are refreshed before use. */
const EXPIRY_MARGIN_MS = 5000;
/** A refresh that failed without the server's answer is tried again after this long. */
const RETRY_REFRESH_MS = 5000;

export interface TokensOptions {
  /** Fraction of the access token's lifetime after which it is refreshed. */
  refreshAt: number;
  store?: SessionStore;
  locks: Locks;
  /** Trades a refresh token for new tokens (the server's refresh route). */
  exchange(refreshToken: string): Promise<TokenResponse>;
  /**
   * The session is over, found here or elsewhere: its refresh was refused, or a call answered that it was
   * revoked (it stays current, and calls fail with the refusal), or another client removed it from the
   * store (signed out in another tab: it is forgotten here already). Its realtime connection ends with
   * `error`.
   */
  ended(sessionId: string, error: ParleyError): void;
}

export class Tokens {
  private current: Session | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: { sessionId: string; done: Promise<Session> } | null = null;
  /**
   * The session whose refresh the server refused for good (revoked, reused, expired), with its refusal:
   * asked again it would refuse again, and each refresh counts against the address's sign-in rate limit.
   */
  private refused: { sessionId: string; error: ParleyError } | null = null;
  private unwatch: (() => void) | undefined;
  /**
   * The session the store holds, as far as this client knows (its own saves and loads, and the watch):
   * the store saved as null while it held this one means another client signed it out. Undefined when
   * unknown (not watching): a null heard then is not taken for a sign-out of this session.
   */
  private storedId: string | null | undefined;
  /**
   * Set by stop() (the client's close()) until the app starts the client again (sign-in, restore(),
   * connect()): a refresh made meanwhile (one on its way at close(), which is let finish, or a REST call's)
   * keeps its tokens but does not start the refresh timer and the store's watch again.
   */
  private stopped = false;

  constructor(private opts: TokensOptions) {}

  get session(): Session | null {
    return this.current;
  }

  /** A new session of the app's (sign-in, adopt()): it runs again if stop() stopped it. */
  start(session: Session): Promise<Session> {
    this.stopped = false;
    return this.keep(session);
  }

  /** The client runs again (connect() after close()): its session's refresh is due again. */
  wake() {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.current) this.use(this.current);
  }

  /** Stops the refresh timer and the watch on the store; the tokens stay usable. */
  stop() {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    this.storedId = undefined;
  }

  /**
   * Trades the refresh token for new tokens; concurrent callers share one request. Clients sharing a
   * store take turns under a lock, and one that finds newer tokens of its session there takes them.
   */
  refresh(): Promise<Session> {
    const session = this.current;
    if (!session) return Promise.reject(new ParleyError("unauthorized", "not signed in"));
    if (this.refused?.sessionId === session.sessionId) return Promise.reject(this.refused.error);
    // One of an earlier session (signed out or into another since) is not this session's refresh.
    if (this.refreshing?.sessionId === session.sessionId) return this.refreshing.done;
    const done = this.opts.locks
      .request(`parley.refresh:${session.sessionId}`, () => this.refreshUnderLock(session))
      .finally(() => {
        if (this.refreshing?.done === done) this.refreshing = null;
      });
    this.refreshing = { sessionId: session.sessionId, done };
    done.catch((err: unknown) => {
      // Without an answer (offline, a timeout, a 5xx) the server may have spent the refresh token all the
      // same: it is tried again soon, whoever asked, so that it comes back within the server's grace
      // (REFRESH_REUSE_GRACE_SECONDS) rather than at the next timer, when it would end the session as a
      // reuse. A refusal (the session over) or a sign-out is not tried again; one rate limited (its token
      // not spent) waits as long as it is told to, so that its retries do not keep the address's sign-in
      // limit spent.
      if (sessionEnd({ error: err }) || this.stopped || this.current?.sessionId !== session.sessionId) return;
      const told = err instanceof ParleyError ? Number(err.details.retry_after) : Number.NaN;
      this.scheduleRefresh(told > 0 ? Math.max(RETRY_REFRESH_MS, told * 1000) : RETRY_REFRESH_MS);
    });
    return done;
  }

  /**
   * Starts from the store's session; null when it holds none, or when the session has ended (then it is
   * forgotten here and in the store, and `ended` is called). Tokens close to their expiry are refreshed
   * first.
   */
  async restore(store: SessionStore, ended: () => void): Promise<Session | null> {
    const stored = await store.load();
    this.storedId = stored?.sessionId ?? null;
    if (!stored) return null;
    this.stopped = false;
    this.use(stored);
    if (stored.expiresAt - Date.now() >= EXPIRY_MARGIN_MS) return stored;
    try {
      return await this.refresh();
    } catch (err) {
      if (!(err instanceof ParleyError && err.status === 401)) throw err;
      // The stored session has ended (signed out, revoked, expired): there is none to restore.
      ended();
      await this.forget(stored);
      return null;
    }
  }

  /**
   * The server's word on the signed-in user (their own profile updated, or read): the session's user
   * follows it, and so does the store's copy of this session, written under the refresh lock so that it
   * cannot put back tokens a refresh has just replaced. An answer older than the user already held (two
   * updates answered out of order), or about another user, is left.
   */
  follow(user: OwnUserView) {
    const session = this.current;
    if (!session || user.id !== session.user.id || olderUser(user, session.user)) return;
    this.current = { ...session, user };
    const store = this.opts.store;
    if (!store) return;
    void this.opts.locks
      .request(`parley.refresh:${session.sessionId}`, async () => {
        const saved = await store.load();
        this.storedId = saved?.sessionId ?? null;
        if (saved?.sessionId !== session.sessionId || olderUser(user, saved.user)) return;
        await store.save({ ...saved, user });
      })
      .catch(() => {
        // A store that cannot be written: this client has the user all the same.
      });
  }

  /** Drops the session here, and from the store while it holds that session (not another tab's newer one). */
  async forget(ended: Session | null) {
    this.stop();
    this.current = null;
    if (ended) await this.clearStored((saved) => saved.sessionId === ended.sessionId);
  }

  /** The access token to send, refreshed first when close to its expiry. */
  async fresh(): Promise<string> {
    const session = this.current;
    if (!session) throw new ParleyError("unauthorized", "signed out");
    // A session found over is not asked about again: calls fail with the refusal at once.
    if (this.refused?.sessionId === session.sessionId) throw this.refused.error;
    if (session.expiresAt - Date.now() < EXPIRY_MARGIN_MS) return (await this.refresh()).accessToken;
    return session.accessToken;
  }

  /** A new access token for a REST call the server found expired, unless another call already got one. */
  async renew(expired: string): Promise<string | undefined> {
    const session = this.current;
    if (!session) return undefined;
    if (session.accessToken !== expired) return session.accessToken;
    return (await this.refresh()).accessToken;
  }

  /**
   * A call made with `accessToken` was answered that its session is over (session_revoked: revoked from
   * another device, or signed out), before any refresh found it: it ends as a refused refresh ends it. An
   * answer about a token this client no longer uses (an earlier session's, or one replaced since) is left:
   * the next call with the current token, or its refresh, says whether that session is over too.
   */
  async revoked(accessToken: string, error: ParleyError): Promise<void> {
    const session = this.current;
    if (session?.accessToken !== accessToken || this.refused?.sessionId === session.sessionId) return;
    await this.end(session.sessionId, error, (saved) => saved.sessionId === session.sessionId);
  }

  /**
   * The server says the session is over: it stays current but is not refreshed or asked about again (calls
   * fail with `error` at once), its realtime connection ends (`ended`), and the store forgets it while what
   * it holds is `stored`.
   */
  private async end(sessionId: string, error: ParleyError, stored: (saved: Session) => boolean) {
    this.refused = { sessionId, error };
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.opts.ended(sessionId, error);
    await this.clearStored(stored).catch(() => {
      // A store that cannot be written: the refusal is still the answer.
    });
  }

  private async refreshUnderLock(mine: Session): Promise<Session> {
    // Signed out, or into another session, while this waited for the lock: there is nothing to refresh.
    if (this.current?.sessionId !== mine.sessionId) throw signedOut();
    const { store } = this.opts;
    let from = mine;
    // Newer tokens of this session, from another client (the store) or heard of while waiting (watch).
    // Newer ones expire later: a store holding older ones (its save failed) must not hand back a refresh
    // token this client has spent, which would end the session as a reuse.
    const stored = store ? await store.load() : null;
    if (store) this.storedId = stored?.sessionId ?? null;
    for (const other of [this.current, stored]) {
      if (
        other?.sessionId === mine.sessionId &&
        other.refreshToken !== from.refreshToken &&
        other.expiresAt >= from.expiresAt
      )
        from = other;
    }
    if (from !== mine) {
      this.use(from);
      if (from.expiresAt - Date.now() >= EXPIRY_MARGIN_MS) return from;
    }
    let renewed: Session;
    try {
      renewed = sessionOf(await this.opts.exchange(from.refreshToken));
    } catch (err) {
      // Refused for good (a 401: revoked, reused, expired); offline, a timeout or a 503 say nothing of it.
      const over = sessionEnd({ error: err });
      // The store's copy, while it is the one refused, is of no use to another tab or visit either.
      if (over && this.current?.sessionId === mine.sessionId)
        await this.end(mine.sessionId, over.error, (saved) => saved.refreshToken === from.refreshToken);
      throw err;
    }
    // Signed out, or into another session, while the refresh was on its way: its tokens are dropped, so
    // that they neither bring the ended session back nor replace the new one (here or in the store).
    if (this.current?.sessionId !== mine.sessionId) throw signedOut();
    // Not saved over another session the store holds now (an account signed in since in another tab:
    // the one a tab opened next starts as); nor when the store cannot save (see keep()).
    const holds = store ? await store.load() : null;
    if (store) this.storedId = holds?.sessionId ?? null;
    if (holds && holds.sessionId !== mine.sessionId) {
      this.use(renewed);
      return renewed;
    }
    return this.keep(renewed);
  }

  /** Empties the store, if any, while what it holds is `which`. */
  private async clearStored(which: (saved: Session) => boolean) {
    const store = this.opts.store;
    if (!store) return;
    const saved = await store.load();
    this.storedId = saved?.sessionId ?? null;
    if (saved && which(saved)) {
      await store.save(null);
      this.storedId = null;
    }
  }

  /**
   * Makes `session` current and saves it to the store, if any. A store that cannot save (storage full)
   * leaves this client working on its own: the session was made all the same, and failing the sign-in
   * would leave the app to make another.
   */
  private async keep(session: Session): Promise<Session> {
    const kept = this.use(session);
    try {
      if (this.opts.store) {
        await this.opts.store.save(kept);
        this.storedId = kept.sessionId;
      }
    } catch {
      // See above.
    }
    return kept;
  }

  /**
   * Makes `session` current: its refresh is due at `refreshAt` of the time it has left (unless stop()
   * stopped it), and the store is watched for others' refreshes and sign-outs. New tokens of the current
   * session keep its user when theirs is older (a refresh answered before a profile update was). Answers
   * the session made current.
   */
  private use(session: Session): Session {
    const was = this.current;
    const kept =
      was?.sessionId === session.sessionId && olderUser(session.user, was.user)
        ? { ...session, user: was.user }
        : session;
    this.current = kept;
    if (this.stopped) return kept;
    this.scheduleRefresh(Math.max(0, (kept.expiresAt - Date.now()) * this.opts.refreshAt));
    if (!this.unwatch && this.opts.store?.watch) {
      this.unwatch = this.opts.store.watch((saved) => this.heard(saved));
      // What the store holds now, unless a save or a load of this client's says it first.
      const store = this.opts.store;
      void Promise.resolve()
        .then(() => store.load())
        .then((saved) => {
          if (this.unwatch && this.storedId === undefined) this.storedId = saved?.sessionId ?? null;
        })
        .catch(() => {});
    }
    return kept;
  }

  /** Another client saved `saved` to the store. */
  private heard(saved: Session | null) {
    const current = this.current;
    const held = this.storedId;
    this.storedId = saved?.sessionId ?? null;
    if (!current) return;
    if (!saved) {
      // The store held this session and another client emptied it: signed out there (or its refresh was
      // refused there), so the session is over here too. A store emptied while it held another session (an
      // account signed in since in another tab, signing out) leaves this one alone, as that sign-in did.
      if (held !== current.sessionId) return;
      this.stop();
      this.current = null;
      this.opts.ended(current.sessionId, new ParleyError("session_revoked", "signed out in another tab"));
      return;
    }
    if (saved.sessionId !== current.sessionId) return;
    // Another client's refresh of this session: take its tokens (newer ones expire later).
    if (saved.refreshToken !== current.refreshToken && saved.expiresAt >= current.expiresAt) this.use(saved);
    // Another client's copy of a profile update, on the same tokens.
    else if (saved.refreshToken === current.refreshToken && !olderUser(saved.user, current.user))
      this.current = { ...current, user: saved.user };
  }

  private scheduleRefresh(delayMs: number) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.refresh().catch(() => {
        // Tried again by refresh() itself unless the session is over (see there).
      });
    }, delayMs);
    unref(this.refreshTimer);
  }
}

export function sessionOf(res: TokenResponse): Session {
  return {
    user: res.user,
    sessionId: res.session_id,
    accessToken: res.access_token,
    refreshToken: res.refresh_token,
    expiresAt: Date.now() + res.expires_in * 1000,
  };
}

/** Whether `a` is an older view of the user than `b` (by their `updated_at`). */
function olderUser(a: OwnUserView, b: OwnUserView): boolean {
  return Date.parse(a.updated_at) < Date.parse(b.updated_at);
}

function signedOut(): ParleyError {
  return new ParleyError("unauthorized", "signed out while the token was being refreshed");
}

/** Bun and Node timers can be unref'd so that a pending refresh does not keep a process alive. */
function unref(timer: unknown) {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}
