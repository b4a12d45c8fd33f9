// The conversation and message-log behaviour every Store adapter must show, run against each (SQLite, MongoDB).

import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { floorOf } from "../../src/store/floor.ts";
import {
  type ConversationRecord,
  DuplicateError,
  GroupFullError,
  LastOwnerError,
  type MessageRecord,
  MissingError,
  type NewConversation,
  type ParticipantRecord,
  type ReceiptCounts,
  type Store,
} from "../../src/store/types.ts";
import { Rng } from "../fuzz.ts";

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

type Draft = Omit<MessageRecord, "seq" | "version_seq">;

/**
 * A conversation as created, with test defaults (also used by sqlite-search.test.ts); the store's record
 * of it adds member_count.
 */
export function conversation(id: string, over: Partial<NewConversation> = {}): NewConversation {
  return {
    id,
    name: `room ${id}`,
    topic: null,
    conversation_type: "group",
    encrypted: false,
    dm_key: null,
    last_message_id: null,
    last_activity: T0,
    last_seq: 0,
    message_count: 0,
    created_by: "u-alice",
    created_at: T0,
    updated_at: T0,
    ...over,
  };
}

/** A participant record with test defaults (a plain member). */
export function member(
  conversationId: string,
  userId: string,
  over: Partial<ParticipantRecord> = {},
): ParticipantRecord {
  return {
    conversation_id: conversationId,
    user_id: userId,
    role: "member",
    joined_at: T0,
    joined_seq: 0,
    last_read_seq: 0,
    delivered_seq: 0,
    delivered_at: null,
    read_at: null,
    ...over,
  };
}

/**
 * A message's receipts counted the straightforward way, over every member's row (what the store's
 * receiptCounts must equal): those who joined before it but its sender, and of them who have it
 * delivered and read.
 */
export function receiptCountsOf(
  members: readonly ParticipantRecord[],
  seq: number,
  senderId: string,
): ReceiptCounts {
  const to = members.filter((p) => p.user_id !== senderId && p.joined_seq < seq);
  return {
    recipients: to.length,
    delivered: to.filter((p) => p.delivered_seq >= seq).length,
    read: to.filter((p) => p.last_read_seq >= seq).length,
  };
}

let drafts = 0;
/** A message draft with a fresh, ordered id and test defaults. */
export function draft(conversationId: string, senderId: string, over: Partial<Draft> = {}): Draft {
  drafts++;
  return {
    id: `m-${String(drafts).padStart(6, "0")}`,
    conversation_id: conversationId,
    sender_id: senderId,
    client_msg_id: null,
    content: `message ${drafts}`,
    message_type: "text",
    reply_to: null,
    attachments: [],
    reactions: [],
    envelope: null,
    edited_at: null,
    deleted: false,
    created_at: T0 + drafts,
    updated_at: T0 + drafts,
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

const ids = (records: { id: string }[]) => records.map((r) => r.id);
const seqs = (messages: MessageRecord[]) => messages.map((m) => m.seq);
const byUser = (a: ParticipantRecord, b: ParticipantRecord) => a.user_id.localeCompare(b.user_id);

/**
 * Registers the conversations and messages contract. `open` must return a store with no data in it; each
 * test opens its own and closes it afterwards.
 */
export function conversationsContract(name: string, open: () => Promise<Store>) {
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

    /** A group "c-1" with alice (owner) and bob; answers its record as the store should. */
    async function group(id = "c-1", over: Partial<NewConversation> = {}): Promise<ConversationRecord> {
      const c = conversation(id, over);
      await store.conversations.create(c, [member(id, "u-alice", { role: "owner" }), member(id, "u-bob")]);
      return { ...c, member_count: 2 };
    }

    /** Appends and returns the stored message, failing the test if it was not created. */
    async function append(d: Draft): Promise<MessageRecord> {
      const result = await store.messages.append(d);
      expect(result.status).toBe("created");
      return result.message;
    }

    async function appendMany(conversationId: string, n: number): Promise<MessageRecord[]> {
      const out: MessageRecord[] = [];
      for (let i = 0; i < n; i++) out.push(await append(draft(conversationId, i % 2 ? "u-bob" : "u-alice")));
      return out;
    }

    describe("conversations", () => {
      it("reads a created conversation back by id, with its participants", async () => {
        const c = conversation("c-1", { topic: "plans", encrypted: true, conversation_type: "channel" });
        const members = [
          member("c-1", "u-alice", { role: "owner" }),
          member("c-1", "u-bob", { role: "admin" }),
          member("c-1", "u-carol"),
        ];
        await store.conversations.create(c, members);
        expect(await store.conversations.byId("c-1")).toEqual({ ...c, member_count: 3 });
        expect((await store.conversations.participants("c-1")).sort(byUser)).toEqual(members);
        expect(await store.conversations.participant("c-1", "u-bob")).toEqual(
          members[1] as ParticipantRecord,
        );
      });

      it("returns null or nothing for unknown conversations and non-members", async () => {
        await group();
        expect(await store.conversations.byId("c-nope")).toBeNull();
        expect(await store.conversations.participants("c-nope")).toEqual([]);
        expect(await store.conversations.participant("c-1", "u-nobody")).toBeNull();
        expect(await store.conversations.participant("c-nope", "u-alice")).toBeNull();
      });

      it("finds a dm by its dm_key", async () => {
        const dm = conversation("c-dm", { conversation_type: "dm", name: null, dm_key: "u-alice:u-bob" });
        await store.conversations.create(dm, [member("c-dm", "u-alice"), member("c-dm", "u-bob")]);
        expect(await store.conversations.byDmKey("u-alice:u-bob")).toEqual({ ...dm, member_count: 2 });
        expect(await store.conversations.byDmKey("u-alice:u-carol")).toBeNull();
      });

      it("refuses a second dm with the same dm_key (DuplicateError dm) and creates none of it", async () => {
        const dm = conversation("c-dm", { conversation_type: "dm", name: null, dm_key: "u-alice:u-bob" });
        await store.conversations.create(dm, [member("c-dm", "u-alice"), member("c-dm", "u-bob")]);
        const twin = conversation("c-dm2", { conversation_type: "dm", name: null, dm_key: "u-alice:u-bob" });
        const create = store.conversations.create(twin, [
          member("c-dm2", "u-alice"),
          member("c-dm2", "u-bob"),
        ]);
        expect(await duplicateField(create)).toBe("dm");
        expect(await store.conversations.byId("c-dm2")).toBeNull();
        expect(await store.conversations.participants("c-dm2")).toEqual([]);
        expect((await store.conversations.byDmKey("u-alice:u-bob"))?.id).toBe("c-dm");
      });

      it("lets any number of non-dm conversations have no dm_key", async () => {
        await group("c-1");
        await group("c-2");
        await group("c-3");
        expect(ids(await store.conversations.listForUser("u-alice", 10))).toEqual(["c-3", "c-2", "c-1"]);
      });

      describe("listForUser", () => {
        beforeEach(async () => {
          // Created out of order so that the ordering is the store's doing.
          await group("c-b", { last_activity: T0 + 2 * MINUTE });
          await group("c-d", { last_activity: T0 + 3 * MINUTE });
          await group("c-a", { last_activity: T0 + 2 * MINUTE });
          await group("c-c", { last_activity: T0 + MINUTE });
          await store.conversations.create(conversation("c-other", { last_activity: T0 + 9 * MINUTE }), [
            member("c-other", "u-carol"),
          ]);
        });

        it("lists only the user's conversations, latest activity first, ties by id descending", async () => {
          const list = await store.conversations.listForUser("u-alice", 10);
          expect(ids(list)).toEqual(["c-d", "c-b", "c-a", "c-c"]);
          expect(list[0]).toEqual({
            ...conversation("c-d", { last_activity: T0 + 3 * MINUTE }),
            member_count: 2,
          });
          expect(ids(await store.conversations.listForUser("u-carol", 10))).toEqual(["c-other"]);
          expect(await store.conversations.listForUser("u-nobody", 10)).toEqual([]);
        });

        it("returns at most limit conversations", async () => {
          expect(ids(await store.conversations.listForUser("u-alice", 2))).toEqual(["c-d", "c-b"]);
        });

        it("pages strictly before the cursor's (last_activity, id)", async () => {
          const list = (cursor: { last_activity: number; id: string }, limit = 10) =>
            store.conversations.listForUser("u-alice", limit, cursor).then(ids);
          expect(await list({ last_activity: T0 + 3 * MINUTE, id: "c-d" })).toEqual(["c-b", "c-a", "c-c"]);
          // Same last_activity as c-a: only the smaller id comes after c-b.
          expect(await list({ last_activity: T0 + 2 * MINUTE, id: "c-b" })).toEqual(["c-a", "c-c"]);
          expect(await list({ last_activity: T0 + 2 * MINUTE, id: "c-b" }, 1)).toEqual(["c-a"]);
          expect(await list({ last_activity: T0 + 2 * MINUTE, id: "c-a" })).toEqual(["c-c"]);
          expect(await list({ last_activity: T0 + MINUTE, id: "c-c" })).toEqual([]);
        });

        it("lists by id ascending whatever the activity, after a given id, at most limit", async () => {
          const byId = (userId: string, limit: number, after?: string) =>
            store.conversations.listForUserById(userId, limit, after);
          expect(ids(await byId("u-alice", 10))).toEqual(["c-a", "c-b", "c-c", "c-d"]);
          expect((await byId("u-alice", 1))[0]).toEqual({
            ...conversation("c-a", { last_activity: T0 + 2 * MINUTE }),
            member_count: 2,
          });
          expect(ids(await byId("u-alice", 2))).toEqual(["c-a", "c-b"]);
          expect(ids(await byId("u-alice", 2, "c-b"))).toEqual(["c-c", "c-d"]);
          expect(ids(await byId("u-alice", 10, "c-bb"))).toEqual(["c-c", "c-d"]);
          expect(await byId("u-alice", 10, "c-d")).toEqual([]);
          expect(ids(await byId("u-carol", 10))).toEqual(["c-other"]);
          expect(await byId("u-nobody", 10)).toEqual([]);
        });

        it("by id, follows arrivals and departures and passes over a deleted conversation", async () => {
          await store.conversations.addParticipant(member("c-other", "u-alice"));
          await store.conversations.removeParticipant("c-c", "u-alice");
          await store.conversations.delete("c-b");
          expect(ids(await store.conversations.listForUserById("u-alice", 10))).toEqual([
            "c-a",
            "c-d",
            "c-other",
          ]);
          expect(ids(await store.conversations.listForUserById("u-alice", 2))).toEqual(["c-a", "c-d"]);
        });

        it("follows a member's arrival and departure", async () => {
          await store.conversations.addParticipant(member("c-other", "u-alice"));
          expect(ids(await store.conversations.listForUser("u-alice", 1))).toEqual(["c-other"]);
          await store.conversations.removeParticipant("c-d", "u-alice");
          expect(ids(await store.conversations.listForUser("u-alice", 10))).toEqual([
            "c-other",
            "c-b",
            "c-a",
            "c-c",
          ]);
        });

        it("gives every conversation id of a user, and follows arrivals and departures", async () => {
          const sorted = async (userId: string) => (await store.conversations.idsForUser(userId)).sort();
          expect(await sorted("u-alice")).toEqual(["c-a", "c-b", "c-c", "c-d"]);
          expect(await sorted("u-carol")).toEqual(["c-other"]);
          expect(await sorted("u-nobody")).toEqual([]);
          await store.conversations.addParticipant(member("c-other", "u-alice"));
          await store.conversations.removeParticipant("c-d", "u-alice");
          expect(await sorted("u-alice")).toEqual(["c-a", "c-b", "c-c", "c-other"]);
          await store.conversations.delete("c-a");
          expect(await sorted("u-alice")).toEqual(["c-b", "c-c", "c-other"]);
        });

        it("gives a user's peers once each, the user included, and only the user when alone", async () => {
          const sorted = async (userId: string) => (await store.conversations.peersOf(userId)).sort();
          // u-bob is in four of u-alice's conversations and counted once.
          expect(await sorted("u-alice")).toEqual(["u-alice", "u-bob"]);
          expect(await sorted("u-carol")).toEqual(["u-carol"]);
          expect(await sorted("u-nobody")).toEqual(["u-nobody"]);
          await store.conversations.addParticipant(member("c-other", "u-bob"));
          expect(await sorted("u-carol")).toEqual(["u-bob", "u-carol"]);
          expect(await sorted("u-bob")).toEqual(["u-alice", "u-bob", "u-carol"]);
          await store.conversations.removeParticipant("c-other", "u-bob");
          expect(await sorted("u-carol")).toEqual(["u-carol"]);
        });

        it("makes a channel's readers peers of its owners and admins, not of each other", async () => {
          const sorted = async (userId: string) => (await store.conversations.peersOf(userId)).sort();
          await store.conversations.create(conversation("c-chan", { conversation_type: "channel" }), [
            member("c-chan", "u-owner", { role: "owner" }),
            member("c-chan", "u-admin", { role: "admin" }),
            member("c-chan", "u-r1"),
            member("c-chan", "u-r2"),
          ]);
          expect(await sorted("u-owner")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          expect(await sorted("u-admin")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          expect(await sorted("u-r1")).toEqual(["u-admin", "u-owner", "u-r1"]);
          // Readers who share a group as well are peers through it.
          await store.conversations.create(conversation("c-g"), [
            member("c-g", "u-r1"),
            member("c-g", "u-r2"),
          ]);
          expect(await sorted("u-r2")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          // Made an admin, a reader sees the others.
          await store.conversations.setRole("c-chan", "u-r1", "admin");
          await store.conversations.removeParticipant("c-g", "u-r2");
          expect(await sorted("u-r2")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          await store.conversations.setRole("c-chan", "u-r1", "member");
          expect(await sorted("u-r2")).toEqual(["u-admin", "u-owner", "u-r2"]);
        });

        it("tells which of some ids are the user's peers in one call, the user included, each once", async () => {
          const among = async (userId: string, ids: string[]) =>
            (await store.conversations.peersAmong(userId, ids)).sort();
          const everyone = ["u-alice", "u-bob", "u-carol", "u-nobody"];
          expect(await among("u-alice", [...everyone, "u-bob"])).toEqual(["u-alice", "u-bob"]);
          expect(await among("u-carol", ["u-alice", "u-bob"])).toEqual([]);
          expect(await among("u-nobody", everyone)).toEqual(["u-nobody"]);
          expect(await among("u-alice", [])).toEqual([]);
          await store.conversations.addParticipant(member("c-other", "u-bob"));
          expect(await among("u-carol", everyone)).toEqual(["u-bob", "u-carol"]);
          expect(await among("u-bob", everyone)).toEqual(["u-alice", "u-bob", "u-carol"]);
          await store.conversations.removeParticipant("c-other", "u-bob");
          expect(await among("u-carol", everyone)).toEqual(["u-carol"]);
          await store.conversations.delete("c-other");
          expect(await among("u-carol", everyone)).toEqual(["u-carol"]);
        });

        it("answers peersAmong as peersOf in a channel: readers see its owners and admins, not each other", async () => {
          await store.conversations.create(conversation("c-chan", { conversation_type: "channel" }), [
            member("c-chan", "u-owner", { role: "owner" }),
            member("c-chan", "u-admin", { role: "admin" }),
            member("c-chan", "u-r1"),
            member("c-chan", "u-r2"),
          ]);
          const everyone = ["u-owner", "u-admin", "u-r1", "u-r2", "u-alice", "u-carol"];
          /** Each user's answer is peersOf's, cut to `everyone`. */
          const agree = async () => {
            for (const u of everyone) {
              const whole = new Set(await store.conversations.peersOf(u));
              expect({ u, peers: (await store.conversations.peersAmong(u, everyone)).sort() }).toEqual({
                u,
                peers: everyone.filter((id) => whole.has(id)).sort(),
              });
            }
          };
          const among = async (userId: string) =>
            (await store.conversations.peersAmong(userId, everyone)).sort();
          expect(await among("u-r1")).toEqual(["u-admin", "u-owner", "u-r1"]);
          expect(await among("u-owner")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          await agree();
          // Readers who share a group as well are peers through it.
          await store.conversations.create(conversation("c-g"), [
            member("c-g", "u-r1"),
            member("c-g", "u-r2"),
          ]);
          expect(await among("u-r2")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          await agree();
          // A reader made an admin sees the others, and is seen by them; made a reader again, no longer.
          await store.conversations.removeParticipant("c-g", "u-r2");
          await store.conversations.setRole("c-chan", "u-r1", "admin");
          expect(await among("u-r2")).toEqual(["u-admin", "u-owner", "u-r1", "u-r2"]);
          await agree();
          await store.conversations.setRole("c-chan", "u-r1", "member");
          expect(await among("u-r2")).toEqual(["u-admin", "u-owner", "u-r2"]);
          await agree();
        });

        it("answers peersAmong for a thousand ids at once", async () => {
          const ids = Array.from({ length: 998 }, (_, i) => `u-ghost-${i}`);
          const found = await store.conversations.peersAmong("u-alice", [...ids, "u-bob", "u-alice"]);
          expect(found.sort()).toEqual(["u-alice", "u-bob"]);
        });

        it("moves a conversation to the top when a message is appended", async () => {
          await append(draft("c-c", "u-bob", { created_at: T0 + 5 * MINUTE }));
          expect(ids(await store.conversations.listForUser("u-alice", 10))).toEqual([
            "c-c",
            "c-d",
            "c-b",
            "c-a",
          ]);
        });
      });

      it("updates name and topic, keeps the rest and returns the new record", async () => {
        const c = await group("c-1", { topic: "old" });
        const updated = await store.conversations.update("c-1", {
          name: "renamed",
          topic: null,
          updated_at: T0 + MINUTE,
        });
        const expected = { ...c, name: "renamed", topic: null, updated_at: T0 + MINUTE };
        expect(updated).toEqual(expected);
        expect(await store.conversations.byId("c-1")).toEqual(expected);
      });

      it("ignores update fields that are present but undefined", async () => {
        const c = await group("c-1", { topic: "kept" });
        const updated = await store.conversations.update("c-1", {
          name: undefined,
          topic: undefined,
          updated_at: T0 + 1,
        });
        expect(updated).toEqual({ ...c, updated_at: T0 + 1 });
      });

      it("returns null when updating an unknown conversation, and creates nothing", async () => {
        expect(await store.conversations.update("c-nope", { name: "x", updated_at: T0 })).toBeNull();
        expect(await store.conversations.byId("c-nope")).toBeNull();
      });

      it("deletes a conversation with its participants and messages, and nothing else", async () => {
        await group("c-1");
        await group("c-2");
        const [m1] = await appendMany("c-1", 3);
        const [kept] = await appendMany("c-2", 1);
        await store.conversations.delete("c-1");
        expect(await store.conversations.byId("c-1")).toBeNull();
        expect(await store.conversations.participants("c-1")).toEqual([]);
        expect(await store.messages.byId((m1 as MessageRecord).id)).toBeNull();
        expect(await store.messages.page("c-1", { limit: 10 })).toEqual([]);
        expect(await store.messages.events("c-1", 0, 10)).toEqual([]);
        expect(ids(await store.conversations.listForUser("u-alice", 10))).toEqual(["c-2"]);
        expect(await store.messages.byId((kept as MessageRecord).id)).toEqual(kept as MessageRecord);
        expect(await store.conversations.participants("c-2")).toHaveLength(2);
      });

      it("deleting an unknown conversation does nothing", async () => {
        await group("c-1");
        await store.conversations.delete("c-nope");
        expect(await store.conversations.byId("c-1")).not.toBeNull();
      });

      it("addParticipant is true for a new member, false for an existing one (which it leaves alone)", async () => {
        await group("c-1");
        const carol = member("c-1", "u-carol", {
          joined_at: T0 + MINUTE,
          joined_seq: 7,
          delivered_seq: 7,
          last_read_seq: 7,
        });
        expect(await store.conversations.addParticipant(carol)).toBe(true);
        expect(await store.conversations.participant("c-1", "u-carol")).toEqual(carol);
        expect(await store.conversations.addParticipant({ ...carol, role: "admin", joined_at: T0 + 2 })).toBe(
          false,
        );
        expect(await store.conversations.participant("c-1", "u-carol")).toEqual(carol);
        expect(await store.conversations.participants("c-1")).toHaveLength(3);
      });

      it("addParticipant refuses a conversation that does not exist (MissingError) and adds nobody", async () => {
        await group("c-1");
        await store.conversations.delete("c-1");
        const late = member("c-1", "u-carol", { joined_at: T0 + MINUTE });
        expect(await store.conversations.addParticipant(late).catch((e: unknown) => e)).toBeInstanceOf(
          MissingError,
        );
        expect(await store.conversations.participants("c-1")).toEqual([]);
        expect(await store.conversations.idsForUser("u-carol")).toEqual([]);
      });

      it("addParticipant with maxMembers takes members up to it, then refuses a newcomer (GroupFullError)", async () => {
        await group("c-1");
        const add = (user: string) =>
          store.conversations.addParticipant(member("c-1", user), { maxMembers: 3 });
        expect(await add("u-carol")).toBe(true);
        const refused = await add("u-dave").catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(GroupFullError);
        expect(refused).toMatchObject({ conversationId: "c-1", maxMembers: 3 });
        // A member already there is not a newcomer: false, as without the bound.
        expect(await add("u-carol")).toBe(false);
        expect((await store.conversations.byId("c-1"))?.member_count).toBe(3);
        expect(await store.conversations.participant("c-1", "u-dave")).toBeNull();
        // A conversation already past the bound keeps its members and takes no one; a member gone makes room.
        expect(
          await store.conversations
            .addParticipant(member("c-1", "u-dave"), { maxMembers: 2 })
            .catch((e) => e),
        ).toBeInstanceOf(GroupFullError);
        await store.conversations.removeParticipant("c-1", "u-carol");
        expect(await add("u-dave")).toBe(true);
        // No maxMembers: no bound.
        expect(await store.conversations.addParticipant(member("c-1", "u-erin"))).toBe(true);
      });

      it("addParticipant with maxMembers lets no more in than it when members are added at the same moment", async () => {
        await group("c-1");
        const users = Array.from({ length: 10 }, (_, i) => `u-new${i}`);
        const results = await Promise.allSettled(
          users.map((u) => store.conversations.addParticipant(member("c-1", u), { maxMembers: 5 })),
        );
        const added = results.filter((r) => r.status === "fulfilled" && r.value === true);
        const refused = results.filter((r) => r.status === "rejected" && r.reason instanceof GroupFullError);
        expect([added.length, refused.length]).toEqual([3, 7]);
        expect(await store.conversations.participants("c-1")).toHaveLength(5);
        expect((await store.conversations.byId("c-1"))?.member_count).toBe(5);
      });

      it("never leaves a member behind in a conversation deleted while the member was being added", async () => {
        // Each add either lands before the deletion (which then takes the member with it) or finds the
        // conversation gone. A channel's add writes no receipts count, so nothing else makes the two meet.
        for (let i = 0; i < 20; i++) {
          const id = `c-race${i}`;
          const type = i % 2 ? "group" : "channel";
          await store.conversations.create(conversation(id, { conversation_type: type }), [
            member(id, "u-alice", { role: "owner" }),
          ]);
          const [added] = await Promise.allSettled([
            store.conversations.addParticipant(member(id, "u-carol")),
            store.conversations.delete(id),
          ]);
          if (added.status === "rejected") expect(added.reason).toBeInstanceOf(MissingError);
          expect(await store.conversations.byId(id)).toBeNull();
          expect(await store.conversations.participants(id)).toEqual([]);
        }
        expect(await store.conversations.idsForUser("u-carol")).toEqual([]);
        expect(await store.conversations.peersOf("u-carol")).toEqual(["u-carol"]);
      });

      it("lastSeqs answers the last_seq of each conversation named that exists, and follows appends", async () => {
        await group("c-1");
        await group("c-2");
        await group("c-gone");
        await appendMany("c-1", 3);
        await appendMany("c-gone", 1);
        await store.conversations.delete("c-gone");
        const seqs = await store.conversations.lastSeqs(["c-1", "c-2", "c-gone", "c-nowhere"]);
        expect([...seqs].sort()).toEqual([
          ["c-1", 3],
          ["c-2", 0],
        ]);
        await appendMany("c-2", 2);
        expect([...(await store.conversations.lastSeqs(["c-2"]))]).toEqual([["c-2", 2]]);
        expect((await store.conversations.lastSeqs([])).size).toBe(0);
      });

      describe("memberships", () => {
        it("gives the user's rows among the ids named, with their conversation's type and receipts version", async () => {
          await group("c-1");
          await store.conversations.create(conversation("c-2", { conversation_type: "channel" }), [
            member("c-2", "u-alice", { role: "owner" }),
            member("c-2", "u-bob", { delivered_seq: 3, last_read_seq: 2 }),
          ]);
          await store.conversations.create(conversation("c-3"), [member("c-3", "u-alice")]);
          await group("c-gone");
          await store.conversations.delete("c-gone");
          const found = await store.conversations.memberships("u-bob", [
            "c-1",
            "c-2",
            "c-3",
            "c-gone",
            "c-nope",
          ]);
          const [one, two] = found.sort((a, b) => a.conversation_id.localeCompare(b.conversation_id));
          expect(found).toHaveLength(2);
          expect(one).toEqual({
            ...member("c-1", "u-bob"),
            conversation_type: "group",
            receipts_version: expect.any(Number),
          });
          expect(two).toEqual({
            ...member("c-2", "u-bob", { delivered_seq: 3, last_read_seq: 2 }),
            conversation_type: "channel",
            receipts_version: expect.any(Number),
          });
          expect(await store.conversations.memberships("u-bob", [])).toEqual([]);
          expect(await store.conversations.memberships("u-nobody", ["c-1"])).toEqual([]);
        });

        it("moves a group's receipts version with every position that moves and every member added or removed, and only then", async () => {
          await group("c-1");
          await group("c-2");
          const version = async () =>
            (await store.conversations.memberships("u-alice", ["c-1"]))[0]?.receipts_version as number;
          const steps: [string, () => Promise<unknown>, boolean][] = [
            ["delivered", () => store.conversations.markDelivered("c-1", "u-bob", 3, T0), true],
            ["delivered again", () => store.conversations.markDelivered("c-1", "u-bob", 3, T0), false],
            ["delivered behind", () => store.conversations.markDelivered("c-1", "u-bob", 1, T0), false],
            ["read", () => store.conversations.markRead("c-1", "u-bob", 2, T0), true],
            ["read behind", () => store.conversations.markRead("c-1", "u-bob", 1, T0), false],
            ["read past delivered", () => store.conversations.markRead("c-1", "u-alice", 4, T0), true],
            ["another conversation", () => store.conversations.markRead("c-2", "u-bob", 9, T0), false],
            ["a non-member", () => store.conversations.markRead("c-1", "u-nobody", 9, T0), false],
            ["renamed", () => store.conversations.update("c-1", { name: "x", updated_at: T0 }), false],
            ["a role", () => store.conversations.setRole("c-1", "u-bob", "admin"), false],
            ["added", () => store.conversations.addParticipant(member("c-1", "u-carol")), true],
            ["added again", () => store.conversations.addParticipant(member("c-1", "u-carol")), false],
            ["removed", () => store.conversations.removeParticipant("c-1", "u-carol"), true],
            ["removed again", () => store.conversations.removeParticipant("c-1", "u-carol"), false],
          ];
          for (const [what, step, moves] of steps) {
            const before = await version();
            await step();
            const after = await version();
            expect({ what, moved: after > before }).toEqual({ what, moved: moves });
            expect(after).toBeGreaterThanOrEqual(before);
          }
        });

        it("keeps no receipts version in a channel: its readers' reads write nothing more", async () => {
          await store.conversations.create(conversation("c-1", { conversation_type: "channel" }), [
            member("c-1", "u-alice", { role: "owner" }),
            member("c-1", "u-bob"),
          ]);
          const version = async () =>
            (await store.conversations.memberships("u-alice", ["c-1"]))[0]?.receipts_version;
          const before = await version();
          await store.conversations.markRead("c-1", "u-bob", 5, T0);
          await store.conversations.addParticipant(member("c-1", "u-carol"));
          expect(await version()).toBe(before as number);
        });
      });

      describe("member_count", () => {
        const count = async (id = "c-1") => (await store.conversations.byId(id))?.member_count;

        it("counts the members created with it, each user once, and moves with each one added or removed, and only then", async () => {
          await store.conversations.create(conversation("c-1", { conversation_type: "channel" }), [
            member("c-1", "u-alice", { role: "owner" }),
            member("c-1", "u-bob"),
            member("c-1", "u-bob"),
          ]);
          await group("c-2");
          expect(await count()).toBe(2);
          const steps: [string, () => Promise<unknown>, number][] = [
            ["added", () => store.conversations.addParticipant(member("c-1", "u-carol")), 3],
            ["added again", () => store.conversations.addParticipant(member("c-1", "u-carol")), 3],
            ["another's member", () => store.conversations.addParticipant(member("c-2", "u-dave")), 3],
            ["a role", () => store.conversations.setRole("c-1", "u-carol", "admin"), 3],
            ["read", () => store.conversations.markRead("c-1", "u-bob", 4, T0), 3],
            ["renamed", () => store.conversations.update("c-1", { name: "x", updated_at: T0 }), 3],
            ["a message", () => store.messages.append(draft("c-1", "u-alice")), 3],
            ["removed", () => store.conversations.removeParticipant("c-1", "u-bob"), 2],
            ["removed again", () => store.conversations.removeParticipant("c-1", "u-bob"), 2],
            ["a non-member", () => store.conversations.removeParticipant("c-1", "u-nobody"), 2],
            [
              "the last owner kept",
              () =>
                store.conversations.removeParticipant("c-1", "u-alice", { keepOwner: true }).catch(() => {}),
              2,
            ],
            ["left", () => store.conversations.removeParticipant("c-1", "u-carol", { keepOwner: true }), 1],
          ];
          for (const [what, step, expected] of steps) {
            await step();
            expect({ what, count: await count() }).toEqual({ what, count: expected });
          }
          expect(await count("c-2")).toBe(3);
        });

        it("is on every record the store answers: by id, by dm key, in both lists, and after an update", async () => {
          await group("c-1");
          await store.conversations.addParticipant(member("c-1", "u-carol"));
          await store.conversations.create(conversation("c-dm", { conversation_type: "dm", dm_key: "a:b" }), [
            member("c-dm", "u-alice"),
            member("c-dm", "u-bob"),
          ]);
          const counts = (records: ConversationRecord[]) =>
            Object.fromEntries(records.map((c) => [c.id, c.member_count]));
          expect(counts(await store.conversations.listForUser("u-alice", 10))).toEqual({
            "c-1": 3,
            "c-dm": 2,
          });
          expect(counts(await store.conversations.listForUserById("u-alice", 10))).toEqual({
            "c-1": 3,
            "c-dm": 2,
          });
          expect((await store.conversations.byDmKey("a:b"))?.member_count).toBe(2);
          expect((await store.conversations.update("c-1", { name: "y", updated_at: T0 }))?.member_count).toBe(
            3,
          );
        });

        it("stays the number of members through adds and removals made at once", async () => {
          await store.conversations.create(conversation("c-1", { conversation_type: "channel" }), [
            member("c-1", "u-alice", { role: "owner" }),
            ...Array.from({ length: 20 }, (_, i) => member("c-1", `u-old${i}`)),
          ]);
          await Promise.all([
            ...Array.from({ length: 20 }, (_, i) =>
              store.conversations.addParticipant(member("c-1", `u-new${i}`)),
            ),
            ...Array.from({ length: 20 }, (_, i) =>
              store.conversations.removeParticipant("c-1", `u-old${i}`),
            ),
            // The same users twice: each counted once.
            ...Array.from({ length: 10 }, (_, i) =>
              store.conversations.addParticipant(member("c-1", `u-new${i}`)),
            ),
          ]);
          expect(await count()).toBe((await store.conversations.participants("c-1")).length);
          expect(await count()).toBe(21);
        });
      });

      describe("managers", () => {
        it("answers a channel's owners and admins by (joined_at, user_id), none of its readers, and follows their roles", async () => {
          const at = (minutes: number) => ({ joined_at: T0 + minutes * MINUTE });
          await store.conversations.create(conversation("c-1", { conversation_type: "channel" }), [
            member("c-1", "u-zed", { role: "owner", ...at(0) }),
            member("c-1", "u-bob", { role: "admin", ...at(2) }),
            member("c-1", "u-amy", { role: "admin", ...at(2) }),
            ...Array.from({ length: 300 }, (_, i) =>
              member("c-1", `u-r${String(i).padStart(3, "0")}`, at(1)),
            ),
          ]);
          await group("c-2");
          const managers = async () =>
            (await store.conversations.managers("c-1")).map((p) => [p.user_id, p.role]);
          expect(await managers()).toEqual([
            ["u-zed", "owner"],
            ["u-amy", "admin"],
            ["u-bob", "admin"],
          ]);
          expect((await store.conversations.managers("c-1"))[0]).toEqual(
            member("c-1", "u-zed", { role: "owner", ...at(0) }),
          );
          await store.conversations.setRole("c-1", "u-r007", "admin");
          await store.conversations.setRole("c-1", "u-bob", "member");
          await store.conversations.removeParticipant("c-1", "u-amy");
          expect(await managers()).toEqual([
            ["u-zed", "owner"],
            ["u-r007", "admin"],
          ]);
          expect((await store.conversations.managers("c-2")).map((p) => p.user_id)).toEqual(["u-alice"]);
          expect(await store.conversations.managers("c-nope")).toEqual([]);
        });
      });

      describe("participantsPage", () => {
        const userIds = (rows: ParticipantRecord[]) => rows.map((p) => p.user_id);
        const name = (i: number) => `u-${String(i).padStart(4, "0")}`;

        it("pages through every member once, by user id, from where the last page ended", async () => {
          // Joined in the reverse of their ids' order: the order is the ids'.
          const members = Array.from({ length: 250 }, (_, i) =>
            member("c-1", name(i), { joined_at: T0 - i, role: i === 0 ? "owner" : "member" }),
          );
          await store.conversations.create(conversation("c-1", { conversation_type: "channel" }), members);
          await group("c-2");
          const seen: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await store.conversations.participantsPage("c-1", 100, after);
            seen.push(...userIds(page));
            if (page.length < 100) break;
            after = page.at(-1)?.user_id;
          }
          expect(seen).toEqual(members.map((m) => m.user_id));
          expect((await store.conversations.participantsPage("c-1", 1))[0]).toEqual(
            members[0] as ParticipantRecord,
          );
          expect(userIds(await store.conversations.participantsPage("c-1", 2, "u-0100"))).toEqual([
            "u-0101",
            "u-0102",
          ]);
          // After an id that is no member's: from the next one up.
          expect(userIds(await store.conversations.participantsPage("c-1", 1, "u-0100x"))).toEqual([
            "u-0101",
          ]);
          expect(await store.conversations.participantsPage("c-1", 10, "u-0249")).toEqual([]);
          expect(await store.conversations.participantsPage("c-1", 0)).toEqual([]);
          expect(await store.conversations.participantsPage("c-nope", 10)).toEqual([]);
          expect(userIds(await store.conversations.participantsPage("c-2", 10))).toEqual([
            "u-alice",
            "u-bob",
          ]);
        });

        it("changes only the pages after their place for members added or removed between pages", async () => {
          await store.conversations.create(
            conversation("c-1", { conversation_type: "channel" }),
            Array.from({ length: 40 }, (_, i) => member("c-1", name(i * 10))),
          );
          const first = userIds(await store.conversations.participantsPage("c-1", 10));
          expect(first.at(-1)).toBe(name(90));
          // Before the cursor: not listed; after it: listed; removed after it: not listed.
          await store.conversations.addParticipant(member("c-1", name(55)));
          await store.conversations.addParticipant(member("c-1", name(105)));
          await store.conversations.removeParticipant("c-1", name(110));
          await store.conversations.removeParticipant("c-1", name(20));
          const second = userIds(await store.conversations.participantsPage("c-1", 3, name(90)));
          expect(second).toEqual([name(100), name(105), name(120)]);
        });
      });

      it("removeParticipant is true for a member, then false", async () => {
        await group("c-1");
        expect(await store.conversations.removeParticipant("c-1", "u-bob")).toBe(true);
        expect(await store.conversations.participant("c-1", "u-bob")).toBeNull();
        expect(await store.conversations.removeParticipant("c-1", "u-bob")).toBe(false);
        expect(await store.conversations.removeParticipant("c-1", "u-nobody")).toBe(false);
        expect((await store.conversations.participants("c-1")).map((p) => p.user_id)).toEqual(["u-alice"]);
      });

      describe("keeping an owner (keepOwner)", () => {
        const owners = async () =>
          (await store.conversations.participants("c-1"))
            .filter((p) => p.role === "owner")
            .map((p) => p.user_id);

        it("refuses to remove or demote the last owner, and leaves members and other owners to go", async () => {
          await group("c-1");
          const keep = { keepOwner: true };
          await expect(store.conversations.removeParticipant("c-1", "u-alice", keep)).rejects.toBeInstanceOf(
            LastOwnerError,
          );
          await expect(store.conversations.setRole("c-1", "u-alice", "admin", keep)).rejects.toBeInstanceOf(
            LastOwnerError,
          );
          expect(await owners()).toEqual(["u-alice"]);
          expect(await store.conversations.setRole("c-1", "u-alice", "owner", keep)).toMatchObject({
            role: "owner",
          });
          expect(await store.conversations.removeParticipant("c-1", "u-nobody", keep)).toBe(false);
          expect(await store.conversations.setRole("c-1", "u-nobody", "member", keep)).toBeNull();
          expect(await store.conversations.setRole("c-1", "u-bob", "owner", keep)).toMatchObject({
            role: "owner",
          });
          expect(await store.conversations.setRole("c-1", "u-alice", "admin", keep)).toMatchObject({
            role: "admin",
          });
          expect(await store.conversations.removeParticipant("c-1", "u-alice", keep)).toBe(true);
          expect(await owners()).toEqual(["u-bob"]);
        });

        it("lets only one of two owners stepping down at the same moment do it", async () => {
          await group("c-1");
          await store.conversations.setRole("c-1", "u-bob", "owner");
          const keep = { keepOwner: true };
          const settled = await Promise.allSettled([
            store.conversations.removeParticipant("c-1", "u-alice", keep),
            store.conversations.setRole("c-1", "u-bob", "member", keep),
          ]);
          expect(settled.filter((s) => s.status === "rejected").map((s) => s.reason)).toEqual([
            expect.any(LastOwnerError),
          ]);
          expect(await owners()).toHaveLength(1);
        });
      });

      it("setRole changes a member's role and returns the record; null for a non-member", async () => {
        await group("c-1");
        const updated = await store.conversations.setRole("c-1", "u-bob", "admin");
        expect(updated).toEqual(member("c-1", "u-bob", { role: "admin" }));
        expect(await store.conversations.participant("c-1", "u-bob")).toEqual(updated as ParticipantRecord);
        expect(await store.conversations.setRole("c-1", "u-nobody", "admin")).toBeNull();
        expect(await store.conversations.participant("c-1", "u-nobody")).toBeNull();
      });

      describe("read and delivery state", () => {
        it("markRead moves last_read_seq and delivered_seq forward and returns the record", async () => {
          await group("c-1");
          const read = await store.conversations.markRead("c-1", "u-bob", 5, T0 + MINUTE);
          expect(read).toEqual(
            member("c-1", "u-bob", {
              last_read_seq: 5,
              delivered_seq: 5,
              read_at: T0 + MINUTE,
              delivered_at: T0 + MINUTE,
            }),
          );
          expect(await store.conversations.participant("c-1", "u-bob")).toEqual(read as ParticipantRecord);
        });

        it("markRead never moves backwards, and keeps the time it last moved", async () => {
          await group("c-1");
          await store.conversations.markRead("c-1", "u-bob", 5, T0 + MINUTE);
          const back = await store.conversations.markRead("c-1", "u-bob", 3, T0 + 2 * MINUTE);
          expect(back?.last_read_seq).toBe(5);
          expect(back?.delivered_seq).toBe(5);
          expect(back?.read_at).toBe(T0 + MINUTE);
          const same = await store.conversations.markRead("c-1", "u-bob", 5, T0 + 3 * MINUTE);
          expect(same?.last_read_seq).toBe(5);
          expect(same?.read_at).toBe(T0 + MINUTE);
        });

        it("markDelivered moves delivered_seq forward only, leaving last_read_seq alone", async () => {
          await group("c-1");
          const delivered = await store.conversations.markDelivered("c-1", "u-bob", 7, T0 + MINUTE);
          expect(delivered).toEqual(member("c-1", "u-bob", { delivered_seq: 7, delivered_at: T0 + MINUTE }));
          const back = await store.conversations.markDelivered("c-1", "u-bob", 2, T0 + 2 * MINUTE);
          expect(back?.delivered_seq).toBe(7);
          expect(back?.delivered_at).toBe(T0 + MINUTE);
          expect(back?.last_read_seq).toBe(0);
        });

        it("markRead below delivered_seq raises last_read_seq but does not lower delivered_seq", async () => {
          await group("c-1");
          await store.conversations.markDelivered("c-1", "u-bob", 7, T0 + MINUTE);
          const read = await store.conversations.markRead("c-1", "u-bob", 6, T0 + 2 * MINUTE);
          expect(read?.last_read_seq).toBe(6);
          expect(read?.read_at).toBe(T0 + 2 * MINUTE);
          expect(read?.delivered_seq).toBe(7);
          expect(read?.delivered_at).toBe(T0 + MINUTE);
        });

        it("marks only the one member", async () => {
          await group("c-1");
          await store.conversations.markRead("c-1", "u-bob", 4, T0 + MINUTE);
          expect(await store.conversations.participant("c-1", "u-alice")).toEqual(
            member("c-1", "u-alice", { role: "owner" }),
          );
        });

        it("returns null for a non-member, and makes nobody a member", async () => {
          await group("c-1");
          expect(await store.conversations.markRead("c-1", "u-nobody", 3, T0)).toBeNull();
          expect(await store.conversations.markDelivered("c-1", "u-nobody", 3, T0)).toBeNull();
          expect(await store.conversations.markRead("c-nope", "u-alice", 3, T0)).toBeNull();
          expect(await store.conversations.participant("c-1", "u-nobody")).toBeNull();
        });

        describe("positionFloor", () => {
          it("gives the two lowest delivered and read positions, lowest first, ties by user id", async () => {
            const c = conversation("c-1");
            const positions: [string, number, number][] = [
              ["u-e", 9, 4],
              ["u-d", 3, 3],
              ["u-c", 7, 1],
              ["u-b", 3, 2],
              ["u-a", 12, 12],
            ];
            await store.conversations.create(
              c,
              positions.map(([u, delivered, read]) =>
                member("c-1", u, { delivered_seq: delivered, last_read_seq: read }),
              ),
            );
            expect(await store.conversations.positionFloor("c-1")).toEqual({
              delivered: [
                { user_id: "u-b", seq: 3 },
                { user_id: "u-d", seq: 3 },
              ],
              read: [
                { user_id: "u-c", seq: 1 },
                { user_id: "u-b", seq: 2 },
              ],
            });
          });

          it("follows reads, deliveries, arrivals and departures", async () => {
            await group("c-1");
            await store.conversations.markDelivered("c-1", "u-alice", 4, T0);
            await store.conversations.markRead("c-1", "u-bob", 2, T0);
            expect(await store.conversations.positionFloor("c-1")).toEqual({
              delivered: [
                { user_id: "u-bob", seq: 2 },
                { user_id: "u-alice", seq: 4 },
              ],
              read: [
                { user_id: "u-alice", seq: 0 },
                { user_id: "u-bob", seq: 2 },
              ],
            });
            await store.conversations.addParticipant(
              member("c-1", "u-carol", { joined_seq: 1, delivered_seq: 1, last_read_seq: 1 }),
            );
            expect((await store.conversations.positionFloor("c-1")).delivered).toEqual([
              { user_id: "u-carol", seq: 1 },
              { user_id: "u-bob", seq: 2 },
            ]);
            await store.conversations.removeParticipant("c-1", "u-carol");
            await store.conversations.markRead("c-1", "u-alice", 6, T0);
            expect(await store.conversations.positionFloor("c-1")).toEqual({
              delivered: [
                { user_id: "u-bob", seq: 2 },
                { user_id: "u-alice", seq: 6 },
              ],
              read: [
                { user_id: "u-bob", seq: 2 },
                { user_id: "u-alice", seq: 6 },
              ],
            });
          });

          it("gives one of each for a lone member, and none for an unknown conversation", async () => {
            await store.conversations.create(conversation("c-1"), [
              member("c-1", "u-alice", { delivered_seq: 2, last_read_seq: 1 }),
            ]);
            expect(await store.conversations.positionFloor("c-1")).toEqual({
              delivered: [{ user_id: "u-alice", seq: 2 }],
              read: [{ user_id: "u-alice", seq: 1 }],
            });
            expect(await store.conversations.positionFloor("c-nope")).toEqual({ delivered: [], read: [] });
          });

          it("equals the two lowest of every member's positions, over many random conversations", async () => {
            const rng = new Rng(20261207);
            for (let n = 0; n < 150; n++) {
              const id = `c-r${n}`;
              const users = new Set<string>();
              const size = rng.int(8);
              while (users.size < size) users.add(`u-${rng.int(12)}`);
              await store.conversations.create(
                conversation(id),
                [...users].map((u) => {
                  const read = rng.int(6);
                  return member(id, u, { last_read_seq: read, delivered_seq: read + rng.int(4) });
                }),
              );
              const floor = await store.conversations.positionFloor(id);
              expect(floor).toEqual(floorOf(await store.conversations.participants(id)));
            }
          });

          it("reads only the conversation's own members", async () => {
            await group("c-1");
            await store.conversations.create(conversation("c-2"), [
              member("c-2", "u-zed", { delivered_seq: 0, last_read_seq: 0 }),
            ]);
            await store.conversations.markRead("c-1", "u-alice", 3, T0);
            await store.conversations.markRead("c-1", "u-bob", 5, T0);
            expect(await store.conversations.positionFloor("c-1")).toEqual({
              delivered: [
                { user_id: "u-alice", seq: 3 },
                { user_id: "u-bob", seq: 5 },
              ],
              read: [
                { user_id: "u-alice", seq: 3 },
                { user_id: "u-bob", seq: 5 },
              ],
            });
          });
        });

        describe("receiptCounts", () => {
          /** [user, joined_seq, delivered_seq, last_read_seq] */
          const channel = async (rows: [string, number, number, number][]) =>
            store.conversations.create(
              conversation("c-1", { conversation_type: "channel" }),
              rows.map(([u, joined, delivered, read]) =>
                member("c-1", u, { joined_seq: joined, delivered_seq: delivered, last_read_seq: read }),
              ),
            );

          it("counts those a message was sent to, leaving out its sender and who joined at or after it, and of them who have it delivered and read", async () => {
            await channel([
              ["u-alice", 0, 9, 9],
              ["u-a", 0, 5, 5], // read it
              ["u-b", 0, 5, 4], // has it, not read
              ["u-c", 0, 4, 4], // neither
              ["u-d", 0, 9, 0], // has it, read nothing
              ["u-g", 4, 4, 4], // joined before it: neither
              ["u-e", 5, 5, 5], // joined after it (the log stood at 5): not sent it
              ["u-f", 7, 7, 7],
              ["u-h", 6, 0, 0], // joined after it, positions given behind (raised to 6)
            ]);
            const counts = (seq: number, sender: string) =>
              store.conversations.receiptCounts("c-1", seq, sender);
            expect(await counts(5, "u-alice")).toEqual({ recipients: 5, delivered: 3, read: 1 });
            // A sender who is no longer a member: every member who joined before it counts.
            expect(await counts(5, "u-gone")).toEqual({ recipients: 6, delivered: 4, read: 2 });
            // A sender who left and came back after it: counted once, among those who joined after.
            expect(await counts(5, "u-e")).toEqual({ recipients: 6, delivered: 4, read: 2 });
            expect(await counts(5, "u-c")).toEqual({ recipients: 5, delivered: 4, read: 2 });
            expect(await counts(1, "u-alice")).toEqual({ recipients: 4, delivered: 4, read: 3 });
            expect(await counts(10, "u-alice")).toEqual({ recipients: 8, delivered: 0, read: 0 });
            const all = await store.conversations.participants("c-1");
            for (const seq of [1, 4, 5, 6, 7, 8, 9, 10])
              for (const sender of ["u-alice", "u-a", "u-e", "u-h", "u-gone"])
                expect(await counts(seq, sender)).toEqual(receiptCountsOf(all, seq, sender));
            expect(await store.conversations.receiptCounts("c-nope", 5, "u-alice")).toEqual({
              recipients: 0,
              delivered: 0,
              read: 0,
            });
          });

          it("keeps every member's positions at least where they joined: raised at creation and at an add", async () => {
            await channel([
              ["u-alice", 0, 0, 0],
              ["u-a", 3, 0, 5],
              ["u-b", 4, 6, 2],
            ]);
            await store.conversations.addParticipant(member("c-1", "u-c", { joined_seq: 5 }));
            await store.conversations.addParticipant(
              member("c-1", "u-d", { joined_seq: 5, delivered_seq: 7, last_read_seq: 6 }),
            );
            const positions = (await store.conversations.participants("c-1")).map((p) => [
              p.user_id,
              p.joined_seq,
              p.delivered_seq,
              p.last_read_seq,
            ]);
            expect(positions.sort()).toEqual([
              ["u-a", 3, 3, 5],
              ["u-alice", 0, 0, 0],
              ["u-b", 4, 6, 4],
              ["u-c", 5, 5, 5],
              ["u-d", 5, 7, 6],
            ]);
          });

          it("follows deliveries, reads, arrivals and departures, and counts only the conversation's own members", async () => {
            await group("c-1");
            await store.conversations.create(conversation("c-2"), [
              member("c-2", "u-zed", { delivered_seq: 9, last_read_seq: 9 }),
              member("c-2", "u-bob", { delivered_seq: 9, last_read_seq: 9 }),
            ]);
            const counts = () => store.conversations.receiptCounts("c-1", 3, "u-alice");
            expect(await counts()).toEqual({ recipients: 1, delivered: 0, read: 0 });
            await store.conversations.markDelivered("c-1", "u-bob", 3, T0);
            expect(await counts()).toEqual({ recipients: 1, delivered: 1, read: 0 });
            await store.conversations.addParticipant(member("c-1", "u-carol", { joined_seq: 2 }));
            await store.conversations.addParticipant(
              member("c-1", "u-dave", { joined_seq: 3, delivered_seq: 3, last_read_seq: 3 }),
            );
            expect(await counts()).toEqual({ recipients: 2, delivered: 1, read: 0 });
            await store.conversations.markRead("c-1", "u-carol", 4, T0);
            expect(await counts()).toEqual({ recipients: 2, delivered: 2, read: 1 });
            await store.conversations.removeParticipant("c-1", "u-bob");
            await store.conversations.removeParticipant("c-1", "u-alice");
            expect(await counts()).toEqual({ recipients: 1, delivered: 1, read: 1 });
          });

          it("equals a count of every member's row, over many random conversations, messages and senders", async () => {
            const rng = new Rng(20261208);
            for (let n = 0; n < 60; n++) {
              const id = `c-r${n}`;
              const users = new Set<string>();
              const size = rng.int(14);
              while (users.size < size) users.add(`u-${rng.int(20)}`);
              await store.conversations.create(
                conversation(id, { conversation_type: rng.pick(["group", "channel"] as const) }),
                [...users].map((u) => {
                  const joined = rng.chance(0.5) ? 0 : rng.int(8);
                  // Mostly from where they joined, as the API adds members; now and then given behind it.
                  const from = rng.chance(0.9) ? joined : 0;
                  const read = from + rng.int(5);
                  return member(id, u, {
                    joined_seq: joined,
                    last_read_seq: read,
                    delivered_seq: read + rng.int(4),
                  });
                }),
              );
              const all = await store.conversations.participants(id);
              for (let k = 0; k < 6; k++) {
                const seq = 1 + rng.int(14);
                const sender = rng.chance(0.8) && all.length > 0 ? rng.pick(all).user_id : `u-${rng.int(25)}`;
                expect(await store.conversations.receiptCounts(id, seq, sender)).toEqual(
                  receiptCountsOf(all, seq, sender),
                );
              }
            }
          });
        });
      });
    });

    describe("messages", () => {
      it("append allocates seq 1, 2, 3 with version_seq equal to seq, and reads back whole", async () => {
        await group("c-1");
        const full = draft("c-1", "u-alice", {
          client_msg_id: "cm-1",
          message_type: "file",
          attachments: [{ file_id: "f-1", file_name: "a.png", file_size: 42, mime_type: "image/png" }],
          reactions: [{ user_id: "u-bob", emoji: "👍" }],
          envelope: { alg: "x25519", n: 1, nested: { ok: true } },
          content: "see attached ✨",
        });
        const first = await store.messages.append(full);
        expect(first).toEqual({ status: "created", message: { ...full, seq: 1, version_seq: 1 } });
        const second = await append(draft("c-1", "u-bob", { reply_to: full.id }));
        const third = await append(draft("c-1", "u-alice"));
        expect([second.seq, second.version_seq, third.seq, third.version_seq]).toEqual([2, 2, 3, 3]);
        expect(await store.messages.byId(full.id)).toEqual({ ...full, seq: 1, version_seq: 1 });
        expect(await store.messages.byId(second.id)).toEqual(second);
        expect(await store.messages.byId("m-nope")).toBeNull();
      });

      it("append updates the conversation's last_seq, last_message_id, last_activity and message_count", async () => {
        const c = await group("c-1");
        await append(draft("c-1", "u-alice", { created_at: T0 + MINUTE }));
        const last = await append(draft("c-1", "u-bob", { created_at: T0 + 2 * MINUTE }));
        expect(await store.conversations.byId("c-1")).toEqual({
          ...c,
          last_seq: 2,
          last_message_id: last.id,
          last_activity: T0 + 2 * MINUTE,
          message_count: 2,
        });
      });

      it("keeps a separate seq for each conversation", async () => {
        await group("c-1");
        await group("c-2");
        await appendMany("c-1", 3);
        const other = await append(draft("c-2", "u-alice"));
        expect(other.seq).toBe(1);
        expect((await store.conversations.byId("c-2"))?.last_seq).toBe(1);
      });

      it("answers a repeated (sender, client_msg_id) with the first message and allocates nothing", async () => {
        const c = await group("c-1");
        const first = await append(draft("c-1", "u-alice", { client_msg_id: "cm-1", content: "first" }));
        const retry = draft("c-1", "u-alice", { client_msg_id: "cm-1", content: "retry" });
        expect(await store.messages.append(retry)).toEqual({ status: "duplicate", message: first });
        expect(await store.messages.byId(retry.id)).toBeNull();
        expect(await store.conversations.byId("c-1")).toEqual({
          ...c,
          last_seq: 1,
          last_message_id: first.id,
          last_activity: first.created_at,
          message_count: 1,
        });
        expect((await append(draft("c-1", "u-alice"))).seq).toBe(2);
      });

      it("treats the same client_msg_id from another sender or in another conversation as new", async () => {
        await group("c-1");
        await group("c-2");
        await append(draft("c-1", "u-alice", { client_msg_id: "cm-1" }));
        const bob = await append(draft("c-1", "u-bob", { client_msg_id: "cm-1" }));
        expect(bob.seq).toBe(2);
        const elsewhere = await append(draft("c-2", "u-alice", { client_msg_id: "cm-1" }));
        expect(elsewhere.seq).toBe(1);
      });

      it("finds a message by its sender's client_msg_id in its conversation, and nothing for another sender or conversation", async () => {
        await group("c-1");
        await group("c-2");
        const first = await append(draft("c-1", "u-alice", { client_msg_id: "cm-1", content: "first" }));
        expect(await store.messages.byClientId("c-1", "u-alice", "cm-1")).toEqual(first);
        expect(await store.messages.byClientId("c-1", "u-bob", "cm-1")).toBeNull();
        expect(await store.messages.byClientId("c-2", "u-alice", "cm-1")).toBeNull();
        expect(await store.messages.byClientId("c-1", "u-alice", "cm-2")).toBeNull();
        const changed = await store.messages.change(first.id, { content: "", deleted: true, updated_at: 5 });
        expect(await store.messages.byClientId("c-1", "u-alice", "cm-1")).toEqual(changed);
      });

      it("never deduplicates messages without a client_msg_id", async () => {
        await group("c-1");
        await append(draft("c-1", "u-alice"));
        expect((await append(draft("c-1", "u-alice"))).seq).toBe(2);
      });

      it("gives 50 concurrent appends exactly the seqs 1..50", async () => {
        await group("c-1");
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            store.messages.append(draft("c-1", i % 2 ? "u-bob" : "u-alice")),
          ),
        );
        expect(results.every((r) => r.status === "created")).toBe(true);
        const allocated = results.map((r) => r.message.seq).sort((a, b) => a - b);
        expect(allocated).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        const stored = await store.conversations.byId("c-1");
        expect(stored?.last_seq).toBe(50);
        expect(stored?.message_count).toBe(50);
        expect(seqs(await store.messages.page("c-1", { limit: 100 }))).toEqual(allocated);
      });

      it("keeps each conversation's seqs and counters right when concurrent appends interleave two of them", async () => {
        await group("c-1");
        await group("c-2");
        const earlier = await append(draft("c-2", "u-bob", { client_msg_id: "cm-old" }));
        const drafts = Array.from({ length: 30 }, (_, i) =>
          draft(i % 3 ? "c-1" : "c-2", i % 2 ? "u-bob" : "u-alice", { client_msg_id: `cm-${i}` }),
        );
        const results = await Promise.all([
          ...drafts.map((d) => store.messages.append(d)),
          store.messages.append(draft("c-2", "u-bob", { client_msg_id: "cm-old" })),
        ]);
        const retry = results.at(-1);
        expect(retry?.status).toBe("duplicate");
        expect(retry?.message.id).toBe(earlier.id);
        for (const [id, count] of [
          ["c-1", 20],
          ["c-2", 11],
        ] as const) {
          const mine = results.slice(0, 30).filter((r) => r.message.conversation_id === id);
          const expected = id === "c-1" ? 20 : 10;
          expect(mine.map((r) => r.message.seq)).toEqual(
            Array.from({ length: expected }, (_, i) => i + 1 + (id === "c-2" ? 1 : 0)),
          );
          const stored = await store.conversations.byId(id);
          expect(stored?.last_seq).toBe(count);
          expect(stored?.message_count).toBe(count);
          expect(stored?.last_message_id).toBe(mine.at(-1)?.message.id);
          expect(seqs(await store.messages.page(id, { limit: 100 }))).toEqual(
            Array.from({ length: count }, (_, i) => i + 1),
          );
        }
      });

      it("fails only the append to a missing conversation among concurrent ones", async () => {
        await group("c-1");
        const results = await Promise.allSettled([
          store.messages.append(draft("c-1", "u-alice")),
          store.messages.append(draft("c-nope", "u-alice")),
          store.messages.append(draft("c-1", "u-bob")),
        ]);
        expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
        const failed = results[1];
        expect(failed?.status === "rejected" && failed.reason).toBeInstanceOf(MissingError);
        expect((await store.conversations.byId("c-1"))?.last_seq).toBe(2);
        expect(seqs(await store.messages.page("c-1", { limit: 10 }))).toEqual([1, 2]);
      });

      it("stores one message for concurrent appends of one client_msg_id", async () => {
        await group("c-1");
        const results = await Promise.all(
          Array.from({ length: 10 }, () =>
            store.messages.append(draft("c-1", "u-alice", { client_msg_id: "cm-x" })),
          ),
        );
        expect(results.filter((r) => r.status === "created")).toHaveLength(1);
        expect(new Set(results.map((r) => r.message.id)).size).toBe(1);
        expect(await store.messages.page("c-1", { limit: 100 })).toHaveLength(1);
        expect((await store.conversations.byId("c-1"))?.message_count).toBe(1);
      });

      describe("change", () => {
        it("allocates the next seq as version_seq, applies the patch and returns the message", async () => {
          await group("c-1");
          const [m1] = (await appendMany("c-1", 2)) as [MessageRecord, MessageRecord];
          const edited = await store.messages.change(m1.id, {
            content: "edited",
            edited_at: T0 + MINUTE,
            updated_at: T0 + MINUTE,
          });
          const expected = {
            ...m1,
            content: "edited",
            edited_at: T0 + MINUTE,
            updated_at: T0 + MINUTE,
            version_seq: 3,
          };
          expect(edited).toEqual(expected);
          expect(await store.messages.byId(m1.id)).toEqual(expected);
        });

        it("bumps the conversation's last_seq but not its message_count", async () => {
          await group("c-1");
          const [m1] = (await appendMany("c-1", 2)) as [MessageRecord, MessageRecord];
          await store.messages.change(m1.id, {
            reactions: [{ user_id: "u-bob", emoji: "🎉" }],
            updated_at: T0 + 1,
          });
          await store.messages.change(m1.id, { deleted: true, content: "", updated_at: T0 + 2 });
          const c = await store.conversations.byId("c-1");
          expect(c?.last_seq).toBe(4);
          expect(c?.message_count).toBe(2);
          const next = await append(draft("c-1", "u-alice"));
          expect(next.seq).toBe(5);
        });

        it("sets reactions, attachments and deleted", async () => {
          await group("c-1");
          const m = await append(draft("c-1", "u-alice"));
          const reactions = [
            { user_id: "u-bob", emoji: "👍" },
            { user_id: "u-alice", emoji: "❤️" },
          ];
          expect((await store.messages.change(m.id, { reactions, updated_at: T0 + 1 }))?.reactions).toEqual(
            reactions,
          );
          const attachments = [
            { file_id: "f-9", file_name: "b.pdf", file_size: 7, mime_type: "application/pdf" },
          ];
          const changed = await store.messages.change(m.id, {
            attachments,
            deleted: true,
            updated_at: T0 + 2,
          });
          expect(changed).toEqual({
            ...m,
            reactions,
            attachments,
            deleted: true,
            updated_at: T0 + 2,
            version_seq: 3,
          });
        });

        it("ignores patch fields that are present but undefined", async () => {
          await group("c-1");
          const m = await append(draft("c-1", "u-alice", { content: "kept" }));
          const changed = await store.messages.change(m.id, {
            content: undefined,
            reactions: undefined,
            updated_at: T0 + MINUTE,
          });
          expect(changed).toEqual({ ...m, updated_at: T0 + MINUTE, version_seq: 2 });
        });

        it("computes the patch from the current record, and takes no seq when it answers null", async () => {
          await group("c-1");
          const [m] = await appendMany("c-1", 1);
          const id = (m as MessageRecord).id;
          const unchanged = await store.messages.change(id, () => null);
          expect(unchanged?.version_seq).toBe(1);
          expect((await store.conversations.byId("c-1"))?.last_seq).toBe(1);
          // Concurrent read-modify-writes all count: none overwrites another's reaction.
          await Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              store.messages.change(id, (current) => ({
                reactions: [...current.reactions, { user_id: `u${i}`, emoji: "👍" }],
                updated_at: T0 + i,
              })),
            ),
          );
          const after = await store.messages.byId(id);
          expect(after?.reactions.map((r) => r.user_id).sort()).toEqual(
            Array.from({ length: 10 }, (_, i) => `u${i}`).sort(),
          );
          expect(after?.version_seq).toBe((await store.conversations.byId("c-1"))?.last_seq);
        });

        it("takes one seq per change made, none for a change that had to start again", async () => {
          await group("c-1");
          const [m1, m2] = (await appendMany("c-1", 2)) as [MessageRecord, MessageRecord];
          // Concurrent read-modify-writes of the same messages: each that finds its record changed under it
          // starts again, and only the seq of the attempt that lands is taken.
          const react = (m: MessageRecord, i: number) =>
            store.messages.change(m.id, (current) => ({
              reactions: [...current.reactions, { user_id: `u${i}`, emoji: "👍" }],
              updated_at: T0 + i,
            }));
          await Promise.all(Array.from({ length: 16 }, (_, i) => react(i % 4 ? m1 : m2, i)));
          expect((await store.conversations.byId("c-1"))?.last_seq).toBe(2 + 16);
          const versions = (await store.messages.events("c-1", 0, 100)).map((m) => m.version_seq);
          expect(versions).toHaveLength(2);
          expect(versions[1]).toBe(18);
          expect((await store.messages.byId(m1.id))?.reactions).toHaveLength(12);
          expect((await store.messages.byId(m2.id))?.reactions).toHaveLength(4);
        });

        it("returns null for an unknown message and allocates nothing", async () => {
          await group("c-1");
          await appendMany("c-1", 1);
          expect(await store.messages.change("m-nope", { content: "x", updated_at: T0 })).toBeNull();
          expect((await store.conversations.byId("c-1"))?.last_seq).toBe(1);
        });
      });

      describe("page", () => {
        let all: MessageRecord[];
        beforeEach(async () => {
          await group("c-1");
          await group("c-2");
          all = await appendMany("c-1", 10);
          await appendMany("c-2", 3);
        });

        it("returns the latest limit messages in ascending order with neither bound", async () => {
          expect(seqs(await store.messages.page("c-1", { limit: 3 }))).toEqual([8, 9, 10]);
          expect(await store.messages.page("c-1", { limit: 100 })).toEqual(all);
        });

        it("returns the limit messages just before an exclusive bound, ascending", async () => {
          expect(seqs(await store.messages.page("c-1", { before: 5, limit: 3 }))).toEqual([2, 3, 4]);
          expect(seqs(await store.messages.page("c-1", { before: 3, limit: 10 }))).toEqual([1, 2]);
          expect(await store.messages.page("c-1", { before: 1, limit: 10 })).toEqual([]);
        });

        it("returns the limit messages just after an exclusive bound, ascending", async () => {
          expect(seqs(await store.messages.page("c-1", { after: 5, limit: 3 }))).toEqual([6, 7, 8]);
          expect(seqs(await store.messages.page("c-1", { after: 8, limit: 10 }))).toEqual([9, 10]);
          expect(await store.messages.page("c-1", { after: 10, limit: 10 })).toEqual([]);
        });

        it("honours both bounds together", async () => {
          expect(seqs(await store.messages.page("c-1", { after: 2, before: 6, limit: 10 }))).toEqual([
            3, 4, 5,
          ]);
        });

        it("keeps an edited message at its original seq", async () => {
          const m4 = all[3] as MessageRecord;
          await store.messages.change(m4.id, { content: "edited", updated_at: T0 + MINUTE });
          const page = await store.messages.page("c-1", { after: 2, limit: 3 });
          expect(seqs(page)).toEqual([3, 4, 5]);
          expect(page[1]?.content).toBe("edited");
        });

        it("returns nothing for an unknown conversation", async () => {
          expect(await store.messages.page("c-nope", { limit: 10 })).toEqual([]);
        });
        it("answers the same page asked again after every kind of write with that write in it", async () => {
          // Members opening a conversation read the same latest page; an adapter may keep the answer
          // (SQLite's reads-memo.ts), but never past a write to the conversation.
          const latest = async () =>
            (await store.messages.page("c-1", { limit: 3 })).map((m) => [m.seq, m.content]);
          expect(seqs(await store.messages.page("c-1", { limit: 3 }))).toEqual([8, 9, 10]);
          expect(seqs(await store.messages.page("c-1", { limit: 3 }))).toEqual([8, 9, 10]); // kept from here on
          const mine = await store.messages.page("c-1", { limit: 3 });
          mine.reverse(); // a caller's copy: changing it changes no later answer
          expect((await latest()).map(([seq]) => seq)).toEqual([8, 9, 10]);
          await appendMany("c-1", 1);
          expect((await latest()).map(([seq]) => seq)).toEqual([9, 10, 11]);
          const m10 = all[9] as MessageRecord;
          await store.messages.change(m10.id, { content: "edited", edited_at: T0 + 1, updated_at: T0 + 1 });
          expect((await latest())[1]).toEqual([10, "edited"]);
          await store.messages.change(m10.id, { deleted: true, content: "", updated_at: T0 + 2 });
          expect((await store.messages.page("c-1", { limit: 3 }))[1]?.deleted).toBe(true);
          // Each bound and limit is a page of its own; another conversation's writes leave c-1's alone.
          expect(seqs(await store.messages.page("c-1", { before: 10, limit: 2 }))).toEqual([8, 9]);
          expect(seqs(await store.messages.page("c-1", { after: 9, limit: 2 }))).toEqual([10, 11]);
          expect(seqs(await store.messages.page("c-1", { after: 8, before: 11, limit: 5 }))).toEqual([9, 10]);
          await appendMany("c-2", 1);
          expect((await latest()).map(([seq]) => seq)).toEqual([9, 10, 11]);
          await store.conversations.delete("c-1");
          expect(await store.messages.page("c-1", { limit: 3 })).toEqual([]);
        });
      });

      describe("events", () => {
        it("lists what changed after a position by version_seq, tombstones included, each message once", async () => {
          await group("c-1");
          const [m1, m2, m3, m4, m5] = (await appendMany("c-1", 5)) as MessageRecord[] as [
            MessageRecord,
            MessageRecord,
            MessageRecord,
            MessageRecord,
            MessageRecord,
          ];
          await store.messages.change(m2.id, { content: "edited", edited_at: T0 + 1, updated_at: T0 + 1 }); // v6
          await store.messages.change(m3.id, { deleted: true, content: "", updated_at: T0 + 2 }); // v7
          await store.messages.change(m2.id, {
            reactions: [{ user_id: "u-bob", emoji: "👍" }],
            updated_at: T0 + 3,
          }); // v8
          const all = await store.messages.events("c-1", 0, 100);
          expect(all.map((m) => [m.id, m.version_seq])).toEqual([
            [m1.id, 1],
            [m4.id, 4],
            [m5.id, 5],
            [m3.id, 7],
            [m2.id, 8],
          ]);
          const tombstone = all[3] as MessageRecord;
          expect(tombstone.deleted).toBe(true);
          expect(tombstone.seq).toBe(3);
          expect((all[4] as MessageRecord).content).toBe("edited");
          expect(ids(await store.messages.events("c-1", 5, 100))).toEqual([m3.id, m2.id]);
          expect(ids(await store.messages.events("c-1", 7, 100))).toEqual([m2.id]);
          expect(await store.messages.events("c-1", 8, 100)).toEqual([]);
        });

        it("returns at most limit events, the earliest", async () => {
          await group("c-1");
          await appendMany("c-1", 6);
          expect((await store.messages.events("c-1", 2, 3)).map((m) => m.version_seq)).toEqual([3, 4, 5]);
        });

        it("cuts the limit across new and changed messages in version_seq order", async () => {
          await group("c-1");
          const [m1, , , , , m6] = (await appendMany("c-1", 6)) as MessageRecord[];
          await store.messages.change((m1 as MessageRecord).id, { content: "again", updated_at: T0 + 1 }); // v7
          const [m8] = (await appendMany("c-1", 1)) as MessageRecord[]; // seq 8
          await store.messages.change((m6 as MessageRecord).id, { content: "later", updated_at: T0 + 2 }); // v9
          const versions = async (after: number, limit: number) =>
            (await store.messages.events("c-1", after, limit)).map((m) => [m.seq, m.version_seq]);
          expect(await versions(0, 3)).toEqual([
            [2, 2],
            [3, 3],
            [4, 4],
          ]);
          expect(await versions(4, 3)).toEqual([
            [5, 5],
            [1, 7],
            [8, 8],
          ]);
          expect(await versions(7, 10)).toEqual([
            [8, 8],
            [6, 9],
          ]);
          expect((await store.messages.events("c-1", 7, 1)).map((m) => m.id)).toEqual([
            (m8 as MessageRecord).id,
          ]);
        });

        it("answers the same catch-up asked again after every kind of write with that write in it", async () => {
          // After a reconnect storm every member asks for the same changes; an adapter may keep the
          // answer (SQLite's reads-memo.ts), but never past a write to the conversation.
          await group("c-1");
          const [m1, m2] = (await appendMany("c-1", 2)) as [MessageRecord, MessageRecord];
          const versions = async () =>
            (await store.messages.events("c-1", 0, 100)).map((m) => [m.id, m.version_seq, m.content]);
          expect(await versions()).toEqual([
            [m1.id, 1, m1.content],
            [m2.id, 2, m2.content],
          ]);
          expect(await versions()).toHaveLength(2); // asked again: SQLite keeps it from here on
          const first = await store.messages.events("c-1", 0, 100);
          first.pop(); // a caller's copy: changing it changes no later answer
          expect(await versions()).toHaveLength(2);
          const [m3] = (await appendMany("c-1", 1)) as [MessageRecord];
          expect((await versions()).map(([id]) => id)).toEqual([m1.id, m2.id, m3.id]);
          await store.messages.change(m1.id, { content: "edited", edited_at: T0 + 1, updated_at: T0 + 1 }); // v4
          expect(await versions()).toEqual([
            [m2.id, 2, m2.content],
            [m3.id, 3, m3.content],
            [m1.id, 4, "edited"],
          ]);
          await store.messages.change(m2.id, {
            reactions: [{ user_id: "u-bob", emoji: "👍" }],
            updated_at: T0 + 2,
          }); // v5
          const reacted = (await store.messages.events("c-1", 0, 100)).at(-1);
          expect([reacted?.id, reacted?.version_seq, reacted?.reactions]).toEqual([
            m2.id,
            5,
            [{ user_id: "u-bob", emoji: "👍" }],
          ]);
          await store.messages.change(m3.id, { deleted: true, content: "", updated_at: T0 + 3 }); // v6
          expect((await store.messages.events("c-1", 0, 100)).at(-1)?.deleted).toBe(true);
          // Other positions and limits of the same conversation are answers of their own.
          expect((await store.messages.events("c-1", 4, 100)).map((m) => m.version_seq)).toEqual([5, 6]);
          expect((await store.messages.events("c-1", 0, 1)).map((m) => m.version_seq)).toEqual([4]);
          await store.conversations.delete("c-1");
          expect(await store.messages.events("c-1", 0, 100)).toEqual([]);
        });

        it("answers a conversation made again under a deleted one's id with its own events", async () => {
          await group("c-1");
          await appendMany("c-1", 2);
          const read = async () => (await store.messages.events("c-1", 0, 100)).map((m) => m.id);
          await read();
          const before = await read(); // asked twice: SQLite keeps it
          await store.conversations.delete("c-1");
          await group("c-1", { created_at: T0 + 1 });
          const again = await appendMany("c-1", 2); // the same seqs, 1 and 2, as the deleted one's
          const after = await read();
          expect(after).toEqual(again.map((m) => m.id));
          expect(after).not.toEqual(before);
        });

        it("lists only the conversation's own events", async () => {
          await group("c-1");
          await group("c-2");
          await appendMany("c-1", 2);
          const [other] = await appendMany("c-2", 1);
          expect(await store.messages.events("c-2", 0, 100)).toEqual([other as MessageRecord]);
        });
      });

      describe("countUnread", () => {
        it("counts live, non-system messages after a seq from anyone but the user", async () => {
          await group("c-1");
          await group("c-2");
          await append(draft("c-1", "u-bob")); // 1: before the position
          await append(draft("c-1", "u-bob")); // 2
          await append(draft("c-1", "u-alice")); // 3: alice's own
          await append(draft("c-1", "u-bob", { message_type: "system", content: "carol joined" })); // 4
          const gone = await append(draft("c-1", "u-bob")); // 5: deleted below
          await append(draft("c-1", "u-carol", { message_type: "image" })); // 6
          await store.messages.change(gone.id, { deleted: true, updated_at: T0 + 1 });
          await appendMany("c-2", 3);
          expect(await store.messages.countUnread("c-1", 1, "u-alice")).toBe(2);
          expect(await store.messages.countUnread("c-1", 0, "u-alice")).toBe(3);
          expect(await store.messages.countUnread("c-1", 6, "u-alice")).toBe(0);
          expect(await store.messages.countUnread("c-1", 0, "u-bob")).toBe(2);
          expect(await store.messages.countUnread("c-nope", 0, "u-alice")).toBe(0);
        });
      });

      describe("search", () => {
        let quick: MessageRecord;
        let lazy: MessageRecord;
        let both: MessageRecord;
        let gone: MessageRecord;
        beforeEach(async () => {
          await group("c-1");
          await group("c-2");
          quick = await append(draft("c-1", "u-alice", { content: "quick brown fox" }));
          lazy = await append(draft("c-1", "u-bob", { content: "lazy dog sleeps" }));
          both = await append(draft("c-1", "u-alice", { content: "fox jumps over dog" }));
          gone = await append(draft("c-1", "u-bob", { content: "fox hidden forever" }));
          await store.messages.change(gone.id, { deleted: true, updated_at: T0 + 1 });
          await append(draft("c-2", "u-alice", { content: "fox elsewhere" }));
        });

        it("finds the conversation's live messages containing a word, whatever its case", async () => {
          expect(ids(await store.messages.search("c-1", "fox", 10)).sort()).toEqual(
            [quick.id, both.id].sort(),
          );
          expect(ids(await store.messages.search("c-1", "FOX", 10)).sort()).toEqual(
            [quick.id, both.id].sort(),
          );
          expect(ids(await store.messages.search("c-1", "sleeps", 10))).toEqual([lazy.id]);
          expect(await store.messages.search("c-1", "hidden", 10)).toEqual([]);
          expect(await store.messages.search("c-1", "elsewhere", 10)).toEqual([]);
          expect(await store.messages.search("c-1", "giraffe", 10)).toEqual([]);
        });

        it("returns whole records, and at most limit", async () => {
          const found = await store.messages.search("c-1", "sleeps", 10);
          expect(found).toEqual([lazy]);
          expect(await store.messages.search("c-1", "fox", 1)).toHaveLength(1);
        });

        it("finds a message matching every term of a query", async () => {
          expect(ids(await store.messages.search("c-1", "dog fox", 10))).toContain(both.id);
        });

        it("searches a message's current content after an edit", async () => {
          await store.messages.change(lazy.id, { content: "sleepy cat", updated_at: T0 + 2 });
          expect(await store.messages.search("c-1", "sleeps", 10)).toEqual([]);
          expect(ids(await store.messages.search("c-1", "cat", 10))).toEqual([lazy.id]);
        });

        it("leaves out system messages, the JSON records of changes", async () => {
          const record = await append(
            draft("c-1", "u-alice", {
              message_type: "system",
              content: JSON.stringify({ event: "participant.added", user_id: "u-fox", role: "member" }),
            }),
          );
          const said = await append(draft("c-1", "u-bob", { content: "welcome, new member" }));
          expect(ids(await store.messages.search("c-1", "member", 10))).toEqual([said.id]);
          expect(ids(await store.messages.search("c-1", "participant added", 10))).not.toContain(record.id);
        });

        it("takes punctuation and quotes as text, never as query syntax", async () => {
          for (const q of ['"foo AND (', "fox)", "-fox", "*", '"', "NEAR(fox dog", "", "   ", "fox:dog"]) {
            const found = await store.messages.search("c-1", q, 10);
            expect(Array.isArray(found)).toBe(true);
            expect(ids(found)).not.toContain(gone.id);
          }
        });

        describe("in scripts written without spaces between words", () => {
          const say = async (content: string) => append(draft("c-1", "u-alice", { content }));
          const find = async (q: string) => ids(await store.messages.search("c-1", q, 10)).sort();

          it("finds a word inside a Chinese, Japanese or Thai sentence, and returns the text as it was sent", async () => {
            const zh = await say("你好世界");
            const ja = await say("明日は東京に行きます。");
            const th = await say("สวัสดีครับ ยินดีที่ได้รู้จัก");
            const lo = await say("ສະບາຍດີ");
            expect(await find("你好")).toEqual([zh.id]);
            expect(await find("世界")).toEqual([zh.id]);
            expect(await find("東京")).toEqual([ja.id]);
            expect(await find("行きます")).toEqual([ja.id]);
            expect(await find("สวัสดี")).toEqual([th.id]);
            expect(await find("รู้จัก")).toEqual([th.id]);
            expect(await find("ສະບາຍ")).toEqual([lo.id]);
            // One character is a word too.
            expect(await find("界")).toEqual([zh.id]);
            expect(await store.messages.search("c-1", "東京", 10)).toEqual([ja]);
          });

          it("matches the characters of a query consecutively and in order, never scattered or reversed", async () => {
            const tokyo = await say("東京に行きます");
            const apart = await say("東の京都");
            expect(await find("東京")).toEqual([tokyo.id]);
            expect(await find("京東")).toEqual([]);
            expect(await find("東京都")).toEqual([]);
            expect(await find("京都")).toEqual([apart.id]);
            expect(await find("東")).toEqual([tokyo.id, apart.id].sort());
            // Every word of a query, each a phrase of its own.
            expect(await find("東 京")).toEqual([tokyo.id, apart.id].sort());
            // Thai vowel signs are part of the letter they follow: ดี (good) is not in ได้ (can).
            const can = await say("ได้ยินไหม");
            const good = await say("ดีมาก");
            expect(await find("ดี")).toEqual([good.id]);
            expect(await find("ได้")).toEqual([can.id]);
          });

          it("mixes them with words of other scripts in one query, every word required", async () => {
            const trip = await say("東京 trip was fun");
            const tokyo = await say("東京に行きます");
            const phone = await say("我的iPhone手机坏了");
            const latin = await say("my iPhone broke");
            const shirt = await say("Tシャツを買った");
            expect(await find("東京 trip")).toEqual([trip.id]);
            expect(await find("trip 東京")).toEqual([trip.id]);
            expect(await find("東京")).toEqual([trip.id, tokyo.id].sort());
            expect(await find("手机")).toEqual([phone.id]);
            expect(await find("iPhone")).toEqual([phone.id, latin.id].sort());
            expect(await find("iPhone手机")).toEqual([phone.id]);
            expect(await find("broke 手机")).toEqual([]);
            expect(await find("Tシャツ")).toEqual([shirt.id]);
            expect(await find("シャツ")).toEqual([shirt.id]);
          });

          it("searches the current text after an edit, to or from such scripts", async () => {
            const trip = await say("東京に行きます");
            const plain = await say("going to Kyoto");
            await store.messages.change(trip.id, { content: "大阪に行きます", updated_at: T0 + 2 });
            await store.messages.change(plain.id, { content: "京都に行きます", updated_at: T0 + 2 });
            expect(await find("東京")).toEqual([]);
            expect(await find("大阪")).toEqual([trip.id]);
            expect(await find("Kyoto")).toEqual([]);
            expect(await find("京都")).toEqual([plain.id]);
            expect(await find("行きます")).toEqual([trip.id, plain.id].sort());
            await store.messages.change(trip.id, { content: "Osaka trip", updated_at: T0 + 3 });
            expect(await find("大阪")).toEqual([]);
            expect(await find("Osaka")).toEqual([trip.id]);
            // A change that leaves the text alone (a reaction) keeps it found.
            await store.messages.change(plain.id, {
              reactions: [{ user_id: "u-bob", emoji: "👍" }],
              updated_at: T0 + 4,
            });
            expect(await find("京都")).toEqual([plain.id]);
            expect((await store.messages.byId(plain.id))?.content).toBe("京都に行きます");
          });

          it("leaves out deleted and system messages, as for any text", async () => {
            const kept = await say("会議は明日です");
            const gone = await say("会議は中止");
            await store.messages.change(gone.id, { content: "", deleted: true, updated_at: T0 + 2 });
            await append(draft("c-1", "u-alice", { message_type: "system", content: '{"name":"会議"}' }));
            expect(await find("会議")).toEqual([kept.id]);
          });

          it("keeps words of spaced scripts whole, Korean included, as before", async () => {
            const ko = await say("한국어 텍스트");
            const ru = await say("Привет, мир");
            expect(await find("한국어")).toEqual([ko.id]);
            expect(await find("한국")).toEqual([]);
            expect(await find("привет")).toEqual([ru.id]);
            expect(await find("Прив")).toEqual([]);
          });
        });

        describe("with combining marks", () => {
          const say = async (content: string) => append(draft("c-1", "u-alice", { content }));
          const find = async (q: string) => ids(await store.messages.search("c-1", q, 10)).sort();

          it("finds vocalized Arabic by the bare word and bare Arabic by the vocalized one", async () => {
            const vocalized = await say("كَتَبَ الوَلَدُ الدَّرْسَ");
            const bare = await say("كتب الطالب رسالة");
            expect(await find("كتب")).toEqual([vocalized.id, bare.id].sort());
            expect(await find("كَتَبَ")).toEqual([vocalized.id, bare.id].sort());
            expect(await find("الدرس")).toEqual([vocalized.id]);
            expect(await find("رِسَالَة")).toEqual([bare.id]);
            // A word, not a run of the letters between marks: ك alone is no word of either.
            expect(await find("ك")).toEqual([]);
            expect((await store.messages.byId(vocalized.id))?.content).toBe("كَتَبَ الوَلَدُ الدَّرْسَ");
          });

          it("finds Hebrew with niqqud by the unpointed word, and the other way", async () => {
            const pointed = await say("שָׁלוֹם עֲלֵיכֶם");
            const plain = await say("שלום לכולם");
            expect(await find("שלום")).toEqual([pointed.id, plain.id].sort());
            expect(await find("שָׁלוֹם")).toEqual([pointed.id, plain.id].sort());
            expect(await find("עליכם")).toEqual([pointed.id]);
            expect(await find("ש")).toEqual([]);
          });

          it("finds a Hindi word whole, never as pieces inside a longer word", async () => {
            const hindi = await say("मुझे हिंदी पसंद है");
            const longer = await say("वह हिंदीभाषी है");
            const greeting = await say("नमस्ते दोस्तों");
            expect(await find("हिंदी")).toEqual([hindi.id]);
            expect(await find("हिंदीभाषी")).toEqual([longer.id]);
            expect(await find("है")).toEqual([hindi.id, longer.id].sort());
            expect(await find("नमस्ते")).toEqual([greeting.id]);
            // Pieces between vowel signs are no words.
            expect(await find("ह")).toEqual([]);
            expect(await find("द")).toEqual([]);
          });

          it("searches the current text after an edit to or from marked text", async () => {
            const msg = await say("plain words");
            await store.messages.change(msg.id, { content: "كَتَبَ", updated_at: T0 + 2 });
            expect(await find("كتب")).toEqual([msg.id]);
            expect(await find("plain")).toEqual([]);
            await store.messages.change(msg.id, { content: "हिंदी", updated_at: T0 + 3 });
            expect(await find("كتب")).toEqual([]);
            expect(await find("हिंदी")).toEqual([msg.id]);
          });

          it("leaves Latin, Chinese and Thai words as they were", async () => {
            const latin = await say("un café crème");
            const zh = await say("我的iPhone手机");
            const th = await say("สวัสดีครับ");
            expect(await find("cafe")).toEqual([latin.id]);
            expect(await find("crème")).toEqual([latin.id]);
            expect(await find("cre")).toEqual([]);
            expect(await find("手机")).toEqual([zh.id]);
            expect(await find("สวัสดี")).toEqual([th.id]);
            expect(await find("ดี")).toEqual([th.id]);
          });
        });
      });
    });
  });
}
