// Sessions shared by several clients of one user: browser tabs of one app, or several SDK instances in one
// page. A refresh token is spent when it is used, and the server revokes the session when a spent one comes
// back (README, `POST /api/auth/refresh`). Two tabs holding the same tokens would both refresh when the
// access token runs out, and the second refresh would end the session for both. With a shared store and a
// lock, one client refreshes and the others take the tokens it saved.

import type { OwnUserView } from "./types.ts";

/** What a client keeps of a signed-in session (ParleyClient.session). */
export interface Session {
  user: OwnUserView;
  sessionId: string;
  accessToken: string;
  refreshToken: string;
  /** Local time (ms) at which the access token expires. */
  expiresAt: number;
}

/**
 * Where clients of one app keep the current session, so that each can start from it and take the tokens
 * another one got. `watch`, when given, reports sessions saved by others (another tab).
 */
export interface SessionStore {
  load(): Session | null | Promise<Session | null>;
  /** `null` when the session ended (sign-out). */
  save(session: Session | null): void | Promise<void>;
  watch?(onChange: (session: Session | null) => void): () => void;
}

/** The part of the Web Locks API (`navigator.locks`) the client uses. */
export interface Locks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/**
 * A store in `localStorage` (or any Storage) under `key`. Tabs of one origin share it, and each hears of
 * the others' saves through the `storage` event. Refresh tokens kept there can be read by any script on
 * the page: an app that cannot rule out script injection should keep sessions in memory instead.
 */
export function localStorageSessionStore(
  key = "parley.session",
  storage: Storage | undefined = globalThis.localStorage,
): SessionStore {
  if (!storage) throw new TypeError("localStorageSessionStore: no localStorage here");
  return {
    load: () => parseSession(storage.getItem(key)),
    save(session) {
      if (session) storage.setItem(key, JSON.stringify(session));
      else storage.removeItem(key);
    },
    watch(onChange) {
      const target = globalThis as unknown as Partial<EventTarget>;
      if (typeof target.addEventListener !== "function") return () => {};
      const listener = (e: Event) => {
        const { key: changed, storageArea, newValue } = e as StorageEvent;
        if (storageArea === storage && (changed === key || changed === null))
          onChange(parseSession(newValue));
      };
      target.addEventListener("storage", listener);
      return () => target.removeEventListener?.("storage", listener);
    },
  };
}

/** A stored value that is not a whole session (another app's key, an older format) reads as none. */
export function parseSession(text: string | null): Session | null {
  if (!text) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const s = value as Partial<Session> | null;
  if (
    typeof s?.sessionId !== "string" ||
    typeof s.accessToken !== "string" ||
    typeof s.refreshToken !== "string" ||
    typeof s.expiresAt !== "number" ||
    typeof s.user?.id !== "string"
  )
    return null;
  return s as Session;
}

/**
 * The browser's Web Locks when there are any (every tab of the origin); otherwise a lock for the clients
 * of this JavaScript realm only.
 */
export function defaultLocks(): Locks {
  const native = (globalThis.navigator as { locks?: Locks } | undefined)?.locks;
  if (native && typeof native.request === "function") return native;
  return localLocks;
}

const tails = new Map<string, Promise<unknown>>();

/** Callers of one name run one at a time, in the order they asked. */
const localLocks: Locks = {
  request(name, callback) {
    const before = tails.get(name) ?? Promise.resolve();
    const run = before.then(callback);
    const tail = run.catch(() => {});
    tails.set(name, tail);
    void tail.then(() => {
      if (tails.get(name) === tail) tails.delete(name);
    });
    return run;
  },
};
