// The behaviour every Store adapter must show, written once and run against each (SQLite, MongoDB).

import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import {
  DuplicateError,
  type MailedTokenRecord,
  type RefreshTokenRecord,
  type SessionRecord,
  type Store,
  type UserRecord,
} from "../../src/store/types.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Times near the real clock: MongoDB's TTL monitor would delete magic links dated in 1970 mid-test. */
const T0 = Date.now();

function user(name: string, over: Partial<UserRecord> = {}): UserRecord {
  return {
    id: `u-${name}`,
    email: `${name}@example.com`,
    username: name,
    display_name: name,
    password_hash: `hash-of-${name}`,
    email_verified_at: null,
    status: "offline",
    chosen_status: "online",
    role: "user",
    last_seen: null,
    created_at: T0,
    updated_at: T0,
    ...over,
  };
}

function session(id: string, userId: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    user_id: userId,
    device_name: `device ${id}`,
    user_agent: "bun-test",
    ip: "127.0.0.1",
    created_at: T0,
    last_seen_at: T0,
    expires_at: T0 + 30 * DAY,
    revoked_at: null,
    signed_in_by: "password",
    ...over,
  };
}

function refreshToken(hash: string, over: Partial<RefreshTokenRecord> = {}): RefreshTokenRecord {
  return {
    hash,
    session_id: "s-1",
    user_id: "u-alice",
    created_at: T0,
    expires_at: T0 + 30 * DAY,
    spent_at: null,
    ...over,
  };
}

function magicLink(hash: string, over: Partial<MailedTokenRecord> = {}): MailedTokenRecord {
  return {
    hash,
    user_id: "u-alice",
    email: "alice@example.com",
    created_at: T0,
    expires_at: T0 + 15 * MINUTE,
    used_at: null,
    ...over,
  };
}

/** The field a DuplicateError names; fails the test if `p` resolves or rejects with anything else. */
async function duplicateField(p: Promise<unknown>): Promise<string> {
  const outcome = await p.then(
    () => "resolved",
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(DuplicateError);
  return (outcome as DuplicateError).field;
}

const usernames = (users: UserRecord[]) => users.map((u) => u.username);

/**
 * Registers the contract suite. `open` must return a store with no data in it; each test opens its own
 * and closes it afterwards.
 */
export function storeContract(name: string, open: () => Promise<Store>) {
  describe(name, () => {
    let store: Store;
    /** Only what this test really opened: when open() fails, there is nothing to close. */
    let opened: Store | undefined;

    beforeEach(async () => {
      opened = undefined;
      store = await open();
      opened = store;
    });
    afterEach(async () => {
      await opened?.close();
    });

    it("answers ping", async () => {
      await store.ping();
    });

    describe("users", () => {
      it("reads a created user back by id, email and username", async () => {
        const alice = user("alice", { display_name: "Alice Liddell", last_seen: T0 - HOUR, role: "admin" });
        await store.users.create(alice);
        expect(await store.users.byId(alice.id)).toEqual(alice);
        expect(await store.users.byEmail("alice@example.com")).toEqual(alice);
        expect(await store.users.byUsername("alice")).toEqual(alice);
      });

      it("returns null for an unknown id, email or username", async () => {
        await store.users.create(user("alice"));
        expect(await store.users.byId("u-nobody")).toBeNull();
        expect(await store.users.byEmail("nobody@example.com")).toBeNull();
        expect(await store.users.byUsername("nobody")).toBeNull();
      });

      it("refuses a second user with the same email (DuplicateError email)", async () => {
        await store.users.create(user("alice"));
        const twin = user("alice2", { email: "alice@example.com" });
        expect(await duplicateField(store.users.create(twin))).toBe("email");
        expect(await store.users.byId(twin.id)).toBeNull();
      });

      it("refuses a second user with the same username (DuplicateError username)", async () => {
        await store.users.create(user("alice"));
        const twin = user("alice", { id: "u-other", email: "other@example.com" });
        expect(await duplicateField(store.users.create(twin))).toBe("username");
        expect(await store.users.byId(twin.id)).toBeNull();
      });

      it("updates the named fields, keeps the others and returns the new record", async () => {
        const alice = user("alice");
        await store.users.create(alice);
        const updated = await store.users.update(alice.id, {
          display_name: "Alice L.",
          status: "dnd",
          chosen_status: "away",
          password_hash: "new-hash",
          last_seen: T0 + MINUTE,
          role: "admin",
          updated_at: T0 + MINUTE,
        });
        const expected: UserRecord = {
          ...alice,
          display_name: "Alice L.",
          status: "dnd",
          chosen_status: "away",
          password_hash: "new-hash",
          last_seen: T0 + MINUTE,
          role: "admin",
          updated_at: T0 + MINUTE,
        };
        expect(updated).toEqual(expected);
        expect(await store.users.byId(alice.id)).toEqual(expected);
      });

      it("ignores patch fields that are present but undefined", async () => {
        const alice = user("alice", { last_seen: T0 });
        await store.users.create(alice);
        const updated = await store.users.update(alice.id, {
          display_name: undefined,
          last_seen: undefined,
          updated_at: T0 + MINUTE,
        });
        expect(updated).toEqual({ ...alice, updated_at: T0 + MINUTE });
      });

      it("sets last_seen back to null when the patch says null", async () => {
        const alice = user("alice", { last_seen: T0 });
        await store.users.create(alice);
        expect(
          (await store.users.update(alice.id, { last_seen: null, updated_at: T0 + 1 }))?.last_seen,
        ).toBeNull();
      });

      it("keeps a user without a password, and when their email was verified", async () => {
        const alice = user("alice", { password_hash: null, email_verified_at: T0 + MINUTE });
        await store.users.create(alice);
        expect(await store.users.byId(alice.id)).toEqual(alice);
        const bob = user("bob");
        await store.users.create(bob);
        const proved = await store.users.update(bob.id, {
          password_hash: null,
          email_verified_at: T0 + HOUR,
          updated_at: T0 + HOUR,
        });
        expect(proved).toEqual({
          ...bob,
          password_hash: null,
          email_verified_at: T0 + HOUR,
          updated_at: T0 + HOUR,
        });
        expect(await store.users.byEmail(bob.email)).toEqual(proved);
      });

      it("updates only while the condition holds (null matching null); otherwise returns null and writes nothing", async () => {
        const alice = user("alice");
        await store.users.create(alice);
        const stale = await store.users.update(
          alice.id,
          { password_hash: "other", updated_at: T0 + 1 },
          { password_hash: "not-the-hash" },
        );
        expect(stale).toBeNull();
        expect(await store.users.byId(alice.id)).toEqual(alice);

        const proved = await store.users.update(
          alice.id,
          { password_hash: null, email_verified_at: T0 + 2, updated_at: T0 + 2 },
          { email_verified_at: null, password_hash: alice.password_hash },
        );
        expect(proved).toMatchObject({ password_hash: null, email_verified_at: T0 + 2 });
        // Proved once: a second takeover's condition fails.
        expect(
          await store.users.update(
            alice.id,
            { display_name: "again", updated_at: T0 + 3 },
            { email_verified_at: null },
          ),
        ).toBeNull();
        // No password: a condition on null holds, one on a hash does not.
        expect(
          await store.users.update(
            alice.id,
            { password_hash: "set", updated_at: T0 + 4 },
            { password_hash: "x" },
          ),
        ).toBeNull();
        const set = await store.users.update(
          alice.id,
          { password_hash: "set", updated_at: T0 + 4 },
          { password_hash: null },
        );
        expect(set).toEqual({
          ...alice,
          password_hash: "set",
          email_verified_at: T0 + 2,
          updated_at: T0 + 4,
        });
        expect(
          await store.users.update(
            "u-nobody",
            { display_name: "Ghost", updated_at: T0 },
            { password_hash: null },
          ),
        ).toBeNull();
      });

      it("leaves updated_at as it was when the patch has none (a presence write), and writes nothing for an empty one", async () => {
        const alice = user("alice");
        await store.users.create(alice);
        const shown = await store.users.update(alice.id, {
          status: "away",
          chosen_status: "away",
          last_seen: T0 + HOUR,
        });
        const expected: UserRecord = {
          ...alice,
          status: "away",
          chosen_status: "away",
          last_seen: T0 + HOUR,
        };
        expect(shown).toEqual(expected);
        expect(await store.users.byId(alice.id)).toEqual(expected);
        // Empty: the record as it is, or null where it would not have been written.
        expect(await store.users.update(alice.id, {})).toEqual(expected);
        expect(await store.users.update(alice.id, {}, { password_hash: "not-the-hash" })).toBeNull();
        expect(await store.users.update(alice.id, {}, { password_hash: alice.password_hash })).toEqual(
          expected,
        );
        expect(await store.users.update("u-nobody", {})).toBeNull();
      });

      it("returns null when updating an unknown id, and creates nothing", async () => {
        expect(await store.users.update("u-nobody", { display_name: "Ghost", updated_at: T0 })).toBeNull();
        expect(await store.users.byId("u-nobody")).toBeNull();
      });

      it("renames a user: found by the new username, not by the old one", async () => {
        const alice = user("alice");
        await store.users.create(alice);
        expect(
          (await store.users.update(alice.id, { username: "alicia", updated_at: T0 + 1 }))?.username,
        ).toBe("alicia");
        expect((await store.users.byUsername("alicia"))?.id).toBe(alice.id);
        expect(await store.users.byUsername("alice")).toBeNull();
      });

      it("refuses to rename a user to a taken username (DuplicateError username) and changes nothing", async () => {
        const alice = user("alice");
        await store.users.create(alice);
        await store.users.create(user("bob"));
        const rename = store.users.update(alice.id, {
          username: "bob",
          display_name: "Bob?",
          updated_at: T0 + 1,
        });
        expect(await duplicateField(rename)).toBe("username");
        expect(await store.users.byId(alice.id)).toEqual(alice);
      });

      it("lets a user keep their own username in an update", async () => {
        const alice = user("alice");
        await store.users.create(alice);
        const updated = await store.users.update(alice.id, { username: "alice", updated_at: T0 + 1 });
        expect(updated).toEqual({ ...alice, updated_at: T0 + 1 });
      });

      it("tells which of the given ids exist", async () => {
        await store.users.create(user("alice"));
        await store.users.create(user("bob"));
        await store.users.create(user("carol"));
        const found = await store.users.existing(["u-carol", "u-nobody", "u-alice"]);
        expect(found.sort()).toEqual(["u-alice", "u-carol"]);
        expect(await store.users.existing([])).toEqual([]);
        expect(await store.users.existing(["u-nobody"])).toEqual([]);
      });

      it("makes every user who is not offline offline, last seen now, and says how many, updated_at left", async () => {
        const now = T0 + MINUTE;
        await store.users.create(user("alice", { status: "online" }));
        await store.users.create(user("bob", { status: "dnd", last_seen: T0 - HOUR }));
        await store.users.create(user("carol", { status: "offline", last_seen: T0 - HOUR }));
        expect(await store.users.allOffline(now)).toBe(2);
        for (const name of ["alice", "bob"]) {
          const found = await store.users.byUsername(name);
          expect(found).toMatchObject({ status: "offline", last_seen: now, updated_at: T0 });
        }
        // Already offline: left as it was.
        const carol = await store.users.byUsername("carol");
        expect(carol).toMatchObject({ status: "offline", last_seen: T0 - HOUR, updated_at: T0 });
        expect(await store.users.allOffline(now + 1)).toBe(0);
      });

      it("shows a user's choice in one step: their status becomes it, last seen now when it is offline, updated_at left", async () => {
        const now = T0 + MINUTE;
        await store.users.create(user("alice", { chosen_status: "away", last_seen: T0 - HOUR }));
        await store.users.create(user("bob", { status: "online", chosen_status: "offline" }));
        await store.users.create(
          user("carol", { status: "dnd", chosen_status: "dnd", last_seen: T0 - HOUR }),
        );
        expect(await store.users.showChosen("u-alice", now)).toMatchObject({
          status: "away",
          chosen_status: "away",
          last_seen: T0 - HOUR,
          updated_at: T0,
        });
        expect(await store.users.showChosen("u-bob", now)).toMatchObject({
          status: "offline",
          chosen_status: "offline",
          last_seen: now,
          updated_at: T0,
        });
        // Shown already, or nobody: nothing written.
        expect(await store.users.showChosen("u-carol", now)).toBeNull();
        expect(await store.users.byUsername("carol")).toMatchObject({ status: "dnd", last_seen: T0 - HOUR });
        expect(await store.users.showChosen("u-nobody", now)).toBeNull();
        // A choice written meanwhile is the one shown, whatever was read before it.
        await store.users.update("u-alice", { status: "dnd", chosen_status: "dnd" });
        expect(await store.users.showChosen("u-alice", now)).toBeNull();
        expect(await store.users.byUsername("alice")).toMatchObject({ status: "dnd", chosen_status: "dnd" });
      });

      it("lists the ids of the users who are not offline", async () => {
        await store.users.create(user("alice", { status: "online" }));
        await store.users.create(user("bob", { status: "dnd" }));
        await store.users.create(user("carol", { status: "offline" }));
        expect((await store.users.notOffline()).sort()).toEqual(["u-alice", "u-bob"]);
        await store.users.allOffline(T0 + MINUTE);
        expect(await store.users.notOffline()).toEqual([]);
      });

      // 300,000 ids: 0.2 s alone, up to 2.2 s on a loaded machine.
      it("tells which ids exist among more ids than SQLite can bind in one statement", async () => {
        await store.users.create(user("alice"));
        const many = Array.from({ length: 300_000 }, (_, i) => `u-ghost-${i}`);
        many.push("u-alice");
        expect(await store.users.existing(many)).toEqual(["u-alice"]);
      }, 15_000);

      describe("list", () => {
        beforeEach(async () => {
          // Created out of order so that ordering by username is the store's doing.
          await store.users.create(user("carol", { display_name: "Carol Danvers" }));
          await store.users.create(user("alice", { display_name: "Alice Liddell" }));
          await store.users.create(user("dave", { display_name: "Al Dente" }));
          await store.users.create(user("bob", { display_name: "Robert Paulson" }));
          await store.users.create(user("al.x", { display_name: "Xavier" }));
          await store.users.create(user("alyx", { display_name: "Vance" }));
        });

        it("lists everyone in username order when there is no prefix", async () => {
          expect(usernames(await store.users.list({ limit: 10 }))).toEqual([
            "al.x",
            "alice",
            "alyx",
            "bob",
            "carol",
            "dave",
          ]);
          expect(usernames(await store.users.list({ prefix: "", limit: 10 }))).toHaveLength(6);
        });

        it("returns whole records", async () => {
          const [carol] = await store.users.list({ prefix: "carol", limit: 10 });
          expect(carol).toEqual(user("carol", { display_name: "Carol Danvers" }));
        });

        it("matches the prefix against the username or the display name, whatever its case", async () => {
          // "al" starts the usernames al.x, alice, alyx and the display names "Alice Liddell" and "Al Dente".
          expect(usernames(await store.users.list({ prefix: "al", limit: 10 }))).toEqual([
            "al.x",
            "alice",
            "alyx",
            "dave",
          ]);
          expect(usernames(await store.users.list({ prefix: "robert p", limit: 10 }))).toEqual(["bob"]);
          expect(usernames(await store.users.list({ prefix: "carol d", limit: 10 }))).toEqual(["carol"]);
        });

        it("matches only at the start of the username or display name", async () => {
          expect(await store.users.list({ prefix: "lice", limit: 10 })).toEqual([]);
          expect(await store.users.list({ prefix: "danvers", limit: 10 })).toEqual([]);
        });

        it("takes the prefix literally: a dot matches only a dot", async () => {
          expect(usernames(await store.users.list({ prefix: "al.", limit: 10 }))).toEqual(["al.x"]);
          expect(await store.users.list({ prefix: "a.", limit: 10 })).toEqual([]);
        });

        it("finds nothing, and does not fail, for a prefix with a NUL character in it", async () => {
          expect(await store.users.list({ prefix: "al\0", limit: 10 })).toEqual([]);
        });

        it("matches a display name whose next character is an emoji (beyond U+FFFF)", async () => {
          await store.users.create(user("zed", { display_name: "Zo🎉 party" }));
          expect(usernames(await store.users.list({ prefix: "zo", limit: 10 }))).toEqual(["zed"]);
          expect(usernames(await store.users.list({ prefix: "zo🎉", limit: 10 }))).toEqual(["zed"]);
        });

        it("matches a display name however its accents were composed (NFC or NFD), the prefix being NFC", async () => {
          // "José" as a Mac keyboard may send it (e + combining acute) and "Émile" composed: one prefix each.
          await store.users.create(user("jose", { display_name: "Jose\u0301 Nfd" }));
          await store.users.create(user("emile", { display_name: "\u00c9mile" }));
          expect(usernames(await store.users.list({ prefix: "jos\u00e9", limit: 10 }))).toEqual(["jose"]);
          expect(usernames(await store.users.list({ prefix: "\u00e9m", limit: 10 }))).toEqual(["emile"]);
          await store.users.update("u-emile", { display_name: "E\u0301lise", updated_at: T0 + 1 });
          expect(usernames(await store.users.list({ prefix: "\u00e9l", limit: 10 }))).toEqual(["emile"]);
        });

        it("follows a display name change", async () => {
          await store.users.update("u-bob", { display_name: "Zebulon", updated_at: T0 + 1 });
          expect(usernames(await store.users.list({ prefix: "zeb", limit: 10 }))).toEqual(["bob"]);
          expect(await store.users.list({ prefix: "robert", limit: 10 })).toEqual([]);
        });

        it("returns at most limit users, the first in username order", async () => {
          expect(usernames(await store.users.list({ limit: 2 }))).toEqual(["al.x", "alice"]);
          expect(usernames(await store.users.list({ prefix: "al", limit: 3 }))).toEqual([
            "al.x",
            "alice",
            "alyx",
          ]);
        });

        it("returns nothing for a limit of 0", async () => {
          expect(await store.users.list({ limit: 0 })).toEqual([]);
        });

        it("pages with afterUsername, which is exclusive", async () => {
          expect(usernames(await store.users.list({ afterUsername: "alice", limit: 2 }))).toEqual([
            "alyx",
            "bob",
          ]);
          expect(usernames(await store.users.list({ afterUsername: "bob", limit: 10 }))).toEqual([
            "carol",
            "dave",
          ]);
          expect(await store.users.list({ afterUsername: "dave", limit: 10 })).toEqual([]);
          // Not itself a username: still a position in the order.
          expect(usernames(await store.users.list({ afterUsername: "b", limit: 1 }))).toEqual(["bob"]);
        });

        it("pages through the matches of a prefix", async () => {
          const page1 = await store.users.list({ prefix: "al", limit: 2 });
          expect(usernames(page1)).toEqual(["al.x", "alice"]);
          const page2 = await store.users.list({ prefix: "al", afterUsername: "alice", limit: 2 });
          expect(usernames(page2)).toEqual(["alyx", "dave"]);
          expect(await store.users.list({ prefix: "al", afterUsername: "dave", limit: 2 })).toEqual([]);
        });
      });
    });

    describe("sessions", () => {
      it("reads a created session back by id; null for an unknown one", async () => {
        const s = session("s-1", "u-alice");
        await store.sessions.create(s);
        expect(await store.sessions.byId("s-1")).toEqual(s);
        expect(await store.sessions.byId("s-nope")).toBeNull();
      });

      it("keeps what opened a session: a password or a magic link", async () => {
        await store.sessions.create(session("s-pw", "u-alice"));
        await store.sessions.create(session("s-link", "u-alice", { signed_in_by: "magic_link" }));
        expect((await store.sessions.byId("s-pw"))?.signed_in_by).toBe("password");
        expect((await store.sessions.byId("s-link"))?.signed_in_by).toBe("magic_link");
        const active = await store.sessions.listActive("u-alice", T0 + 1);
        expect(active.map((s) => [s.id, s.signed_in_by]).sort()).toEqual([
          ["s-link", "magic_link"],
          ["s-pw", "password"],
        ]);
      });

      it("lists a user's active sessions newest first, leaving out revoked and expired ones", async () => {
        const now = T0 + HOUR;
        await store.sessions.create(session("s-old", "u-alice", { created_at: T0 - 2 * HOUR }));
        await store.sessions.create(session("s-new", "u-alice", { created_at: T0 }));
        await store.sessions.create(session("s-mid", "u-alice", { created_at: T0 - HOUR }));
        await store.sessions.create(session("s-revoked", "u-alice", { revoked_at: T0 }));
        await store.sessions.create(session("s-expired", "u-alice", { expires_at: now - 1 }));
        await store.sessions.create(session("s-ends-now", "u-alice", { expires_at: now }));
        await store.sessions.create(session("s-bob", "u-bob"));
        const active = await store.sessions.listActive("u-alice", now);
        expect(active.map((s) => s.id)).toEqual(["s-new", "s-mid", "s-old"]);
        expect(active[0]).toEqual(session("s-new", "u-alice", { created_at: T0 }));
        expect(await store.sessions.listActive("u-nobody", now)).toEqual([]);
      });

      it("leaves out a session once it is revoked", async () => {
        await store.sessions.create(session("s-1", "u-alice"));
        await store.sessions.revoke("s-1", T0 + 1);
        expect(await store.sessions.listActive("u-alice", T0 + 2)).toEqual([]);
      });

      it("touch moves last_seen_at forward, never back", async () => {
        await store.sessions.create(session("s-1", "u-alice"));
        await store.sessions.touch("s-1", T0 + MINUTE);
        expect((await store.sessions.byId("s-1"))?.last_seen_at).toBe(T0 + MINUTE);
        await store.sessions.touch("s-1", T0 + 1);
        expect((await store.sessions.byId("s-1"))?.last_seen_at).toBe(T0 + MINUTE);
      });

      it("touch of an unknown session does nothing", async () => {
        await store.sessions.touch("s-nope", T0);
        expect(await store.sessions.byId("s-nope")).toBeNull();
      });

      it("revoke is true once, then false", async () => {
        await store.sessions.create(session("s-1", "u-alice"));
        expect(await store.sessions.revoke("s-1", T0 + 1)).toBe(true);
        expect(await store.sessions.revoke("s-1", T0 + 2)).toBe(false);
        // The first revocation's time stays.
        expect((await store.sessions.byId("s-1"))?.revoked_at).toBe(T0 + 1);
      });

      it("revoke of an unknown session is false", async () => {
        expect(await store.sessions.revoke("s-nope", T0)).toBe(false);
      });

      it("revokeAllForUser revokes the user's other live sessions and returns their ids", async () => {
        await store.sessions.create(session("s-1", "u-alice"));
        await store.sessions.create(session("s-2", "u-alice"));
        await store.sessions.create(session("s-3", "u-alice"));
        await store.sessions.create(session("s-gone", "u-alice", { revoked_at: T0 }));
        await store.sessions.create(session("s-bob", "u-bob"));
        const revoked = await store.sessions.revokeAllForUser("u-alice", T0 + 1, "s-2");
        expect(revoked.sort()).toEqual(["s-1", "s-3"]);
        expect((await store.sessions.byId("s-1"))?.revoked_at).toBe(T0 + 1);
        expect((await store.sessions.byId("s-3"))?.revoked_at).toBe(T0 + 1);
        expect((await store.sessions.byId("s-gone"))?.revoked_at).toBe(T0);
        expect((await store.sessions.byId("s-2"))?.revoked_at).toBeNull();
        expect((await store.sessions.byId("s-bob"))?.revoked_at).toBeNull();
        expect((await store.sessions.listActive("u-alice", T0 + 2)).map((s) => s.id)).toEqual(["s-2"]);
      });

      it("revokeAllForUser without exceptId revokes every live session", async () => {
        await store.sessions.create(session("s-1", "u-alice"));
        await store.sessions.create(session("s-2", "u-alice"));
        expect((await store.sessions.revokeAllForUser("u-alice", T0 + 1)).sort()).toEqual(["s-1", "s-2"]);
        expect(await store.sessions.listActive("u-alice", T0 + 2)).toEqual([]);
      });

      it("revokeAllForUser returns no ids when there is nothing to revoke", async () => {
        await store.sessions.create(session("s-1", "u-alice"));
        expect(await store.sessions.revokeAllForUser("u-alice", T0 + 1, "s-1")).toEqual([]);
        expect(await store.sessions.revokeAllForUser("u-nobody", T0 + 1)).toEqual([]);
      });
    });

    describe("refresh tokens", () => {
      it("spends a live token once: ok, then spent", async () => {
        const token = refreshToken("h-1");
        await store.refreshTokens.add(token);
        expect(await store.refreshTokens.spend("h-1", T0 + 1)).toEqual({
          status: "ok",
          token: { ...token, spent_at: T0 + 1 },
        });
        // The reuse reports the token as the first spend left it.
        expect(await store.refreshTokens.spend("h-1", T0 + 2)).toEqual({
          status: "spent",
          token: { ...token, spent_at: T0 + 1 },
        });
      });

      it("reports missing for an unknown token", async () => {
        await store.refreshTokens.add(refreshToken("h-1"));
        expect(await store.refreshTokens.spend("h-nope", T0)).toEqual({ status: "missing" });
      });

      it("spends each token on its own", async () => {
        await store.refreshTokens.add(refreshToken("h-1"));
        await store.refreshTokens.add(refreshToken("h-2"));
        expect((await store.refreshTokens.spend("h-1", T0 + 1)).status).toBe("ok");
        expect((await store.refreshTokens.spend("h-2", T0 + 1)).status).toBe("ok");
      });

      it("gives exactly one ok to ten concurrent spends of one token", async () => {
        await store.refreshTokens.add(refreshToken("h-1"));
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.refreshTokens.spend("h-1", T0 + 1 + i)),
        );
        const statuses = results.map((r) => r.status);
        expect(statuses.filter((s) => s === "ok")).toHaveLength(1);
        expect(statuses.filter((s) => s === "spent")).toHaveLength(9);
      });
    });

    // Magic links and email verifications: one port, the same rules, each kind in its own table.
    for (const kind of ["magicLinks", "emailVerifications"] as const) {
      describe(`mailed tokens: ${kind}`, () => {
        it("consumes a live link once and returns it marked used", async () => {
          const link = magicLink("m-1");
          await store[kind].add(link);
          expect(await store[kind].consume("m-1", T0 + MINUTE)).toEqual({ ...link, used_at: T0 + MINUTE });
          expect(await store[kind].consume("m-1", T0 + 2 * MINUTE)).toBeNull();
        });

        it("refuses an expired link, from its expires_at on", async () => {
          const link = magicLink("m-1");
          await store[kind].add(link);
          expect(await store[kind].consume("m-1", link.expires_at)).toBeNull();
          expect(await store[kind].consume("m-1", link.expires_at + HOUR)).toBeNull();
        });

        it("returns null for an unknown link", async () => {
          await store[kind].add(magicLink("m-1"));
          expect(await store[kind].consume("m-nope", T0)).toBeNull();
        });

        it("keeps an earlier live link usable when another is added", async () => {
          await store[kind].add(magicLink("m-1"));
          await store[kind].add(magicLink("m-2", { created_at: T0 + MINUTE, expires_at: T0 + 16 * MINUTE }));
          expect((await store[kind].consume("m-1", T0 + 2 * MINUTE))?.hash).toBe("m-1");
          expect((await store[kind].consume("m-2", T0 + 2 * MINUTE))?.hash).toBe("m-2");
        });

        it("revokes the unused links of one user, and leaves other users' alone", async () => {
          await store[kind].add(magicLink("m-1"));
          await store[kind].add(magicLink("m-2"));
          await store[kind].add(magicLink("m-3", { user_id: "u-other" }));
          expect((await store[kind].consume("m-2", T0 + MINUTE))?.used_at).toBe(T0 + MINUTE);
          await store[kind].revokeForUser(magicLink("m-1").user_id, T0 + 2 * MINUTE);
          expect(await store[kind].consume("m-1", T0 + 3 * MINUTE)).toBeNull();
          expect((await store[kind].consume("m-3", T0 + 3 * MINUTE))?.hash).toBe("m-3");
        });

        it("hands a link to exactly one of ten concurrent consumers", async () => {
          await store[kind].add(magicLink("m-1"));
          const results = await Promise.all(
            Array.from({ length: 10 }, () => store[kind].consume("m-1", T0 + MINUTE)),
          );
          expect(results.filter((r) => r !== null)).toHaveLength(1);
        });

        it("keeps each kind apart: a token of the other kind is unknown here", async () => {
          const other = kind === "magicLinks" ? "emailVerifications" : "magicLinks";
          await store[other].add(magicLink("m-1"));
          expect(await store[kind].consume("m-1", T0 + MINUTE)).toBeNull();
          await store[kind].revokeForUser(magicLink("m-1").user_id, T0 + MINUTE);
          expect((await store[other].consume("m-1", T0 + MINUTE))?.hash).toBe("m-1");
        });
      });
    }

    describe("lockouts", () => {
      it("counts the failures at or after since, this one included", async () => {
        expect(await store.lockouts.recordFailure("u:1", T0, T0 - HOUR)).toBe(1);
        expect(await store.lockouts.recordFailure("u:1", T0 + MINUTE, T0 - HOUR)).toBe(2);
        expect(await store.lockouts.recordFailure("u:1", T0 + 2 * MINUTE, T0 - HOUR)).toBe(3);
      });

      it("stops counting failures that fall out of the window", async () => {
        await store.lockouts.recordFailure("u:1", T0, T0 - HOUR);
        await store.lockouts.recordFailure("u:1", T0 + 10 * MINUTE, T0 - HOUR);
        // Window now starts at T0 + 10 min: the first failure is out, the one at the edge is in.
        expect(await store.lockouts.recordFailure("u:1", T0 + 20 * MINUTE, T0 + 10 * MINUTE)).toBe(2);
        expect(await store.lockouts.recordFailure("u:1", T0 + 2 * HOUR, T0 + HOUR)).toBe(1);
      });

      it("keeps each key's failures apart", async () => {
        await store.lockouts.recordFailure("u:1", T0, T0 - HOUR);
        await store.lockouts.recordFailure("u:1", T0 + 1, T0 - HOUR);
        expect(await store.lockouts.recordFailure("l:alice", T0 + 2, T0 - HOUR)).toBe(1);
      });

      it("starts counting again after clearFailures", async () => {
        await store.lockouts.recordFailure("u:1", T0, T0 - HOUR);
        await store.lockouts.recordFailure("u:1", T0 + 1, T0 - HOUR);
        await store.lockouts.clearFailures("u:1");
        expect(await store.lockouts.recordFailure("u:1", T0 + 2, T0 - HOUR)).toBe(1);
        await store.lockouts.clearFailures("u:never-failed");
      });

      it("reports a lock until it passes, then null", async () => {
        await store.lockouts.lock("u:1", T0 + 15 * MINUTE);
        expect(await store.lockouts.lockedUntil("u:1", T0)).toBe(T0 + 15 * MINUTE);
        expect(await store.lockouts.lockedUntil("u:1", T0 + 15 * MINUTE - 1)).toBe(T0 + 15 * MINUTE);
        expect(await store.lockouts.lockedUntil("u:1", T0 + 15 * MINUTE)).toBeNull();
        expect(await store.lockouts.lockedUntil("u:1", T0 + HOUR)).toBeNull();
      });

      it("reports null for a key never locked, and keeps keys apart", async () => {
        await store.lockouts.lock("u:1", T0 + HOUR);
        expect(await store.lockouts.lockedUntil("u:2", T0)).toBeNull();
      });

      it("moves the end of a lock when the key is locked again", async () => {
        await store.lockouts.lock("u:1", T0 + 15 * MINUTE);
        await store.lockouts.lock("u:1", T0 + HOUR);
        expect(await store.lockouts.lockedUntil("u:1", T0 + 30 * MINUTE)).toBe(T0 + HOUR);
        await store.lockouts.lock("u:1", T0 + MINUTE);
        expect(await store.lockouts.lockedUntil("u:1", T0 + 30 * MINUTE)).toBeNull();
      });
    });
  });
}
