// A channel's members over HTTP: its view carries its owners, admins and the viewer with the count of all
// of them, never its thousands of readers; the member list pages by user id, for a channel's owners and
// admins only. Dms and groups show every member, as before.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ConversationEvent } from "../../../src/realtime/hub.ts";
import type { ParticipantRecord } from "../../../src/store/types.ts";
import {
  BAD_MEMBER_PAGE_QUERIES,
  bigChannel,
  call,
  group,
  type Harness,
  harness,
  storeReader as reader,
  signup,
} from "../../helpers.ts";
import { member } from "../../store/conversations-contract.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User; // the channel's owner
let bob: User; // its admin
let carol: User; // a reader
let dave: User; // another reader
let eve: User; // in nothing
let channel: string;
let created: ConversationEvent | undefined;
const READERS = 3000;
/** Conversations whose every member the app asked the store for. */
const readWhole: string[] = [];
/** Every member, as the store has them, read by the test itself (not counted in readWhole). */
let allMembers: (id: string) => Promise<ParticipantRecord[]>;

type Participant = { user_id: string; role: string };
const ids = (participants: Participant[]) => participants.map((p) => p.user_id);

beforeAll(async () => {
  h = await harness();
  [alice, bob, carol, dave, eve] = await Promise.all(Array.from({ length: 5 }, () => signup(h.app)));
  const off = h.deps.hub.onEvent((e) => {
    if (e.kind === "conversation.created") created = e;
  });
  channel = await bigChannel(h, alice, [bob, carol, dave], { admins: 1, readers: READERS, name: "news" });
  off();
  const conversations = h.deps.store.conversations;
  allMembers = conversations.participants.bind(conversations);
  conversations.participants = (id: string) => {
    readWhole.push(id);
    return allMembers(id);
  };
});
afterAll(() => h.close());

const get = (user: User, path: string) => call(h.app, "GET", path, { token: user.token });
const view = (user: User) => get(user, `/api/conversations/${channel}`);
const page = (user: User, query: string) => get(user, `/api/conversations/${channel}/participants?${query}`);

describe("a channel's view", () => {
  it("carries its owners, admins and the viewer, with every member counted, and reads none of the readers", async () => {
    const [owner, admin] = [await view(alice), await view(bob)];
    for (const res of [owner, admin]) {
      expect(res.status).toBe(200);
      expect(res.body.member_count).toBe(READERS + 4);
      expect(ids(res.body.participants).sort()).toEqual([alice.id, bob.id].sort());
      expect(res.body.participant_ids).toEqual(ids(res.body.participants));
    }
    expect(owner.body.participants.map((p: Participant) => [p.user_id, p.role]).sort()).toEqual(
      [
        [alice.id, "owner"],
        [bob.id, "admin"],
      ].sort(),
    );
    expect(readWhole).not.toContain(channel);
  });

  it("shows a reader no other reader: its owners and admins, and themself", async () => {
    const res = await view(carol);
    expect(res.status).toBe(200);
    expect(res.body.member_count).toBe(READERS + 4);
    expect(ids(res.body.participants).sort()).toEqual([alice.id, bob.id, carol.id].sort());
    expect(res.body.participant_ids).not.toContain(dave.id);
    // The reader's own row, with where their part of the log starts (the SDK resumes from it).
    expect(res.body.participants.find((p: Participant) => p.user_id === carol.id)).toMatchObject({
      role: "member",
      joined_seq: 0,
    });
    const listed = await get(carol, "/api/conversations");
    const item = listed.body.items.find((c: { id: string }) => c.id === channel);
    expect(item.member_count).toBe(READERS + 4);
    expect(ids(item.participants).sort()).toEqual([alice.id, bob.id, carol.id].sort());
    const readerOfStore = await h.deps.store.conversations.participant(channel, reader(7));
    expect(readerOfStore).not.toBeNull();
    expect(readWhole).not.toContain(channel);
  });

  it("answers its creation and a rename the same way, and tells its creation to its members without its readers", async () => {
    const made = await call(h.app, "POST", "/api/conversations", {
      token: carol.token,
      body: { conversation_type: "channel", participant_ids: [dave.id, eve.id] },
    });
    expect(made.status).toBe(201);
    expect([made.body.participant_ids, made.body.member_count]).toEqual([[carol.id], 3]);
    const renamed = await call(h.app, "PUT", `/api/conversations/${channel}`, {
      token: bob.token,
      body: { name: "daily news" },
    });
    expect(renamed.status).toBe(200);
    expect([ids(renamed.body.participants).sort(), renamed.body.member_count]).toEqual([
      [alice.id, bob.id].sort(),
      READERS + 4,
    ]);
    // The first channel's creation event: its frame names the owner alone, the server joins everyone.
    expect(created).toMatchObject({ participant_ids: [alice.id], member_count: 4 });
    expect([...(created?.joining ?? [])].sort()).toEqual([alice.id, bob.id, carol.id, dave.id].sort());
    expect(readWhole).not.toContain(channel);
  });

  it("moves member_count with each member added or removed", async () => {
    const add = await call(h.app, "POST", `/api/conversations/${channel}/participants`, {
      token: bob.token,
      body: { user_id: eve.id },
    });
    expect(add.status).toBe(201);
    expect((await view(eve)).body.member_count).toBe(READERS + 5);
    expect(ids((await view(eve)).body.participants).sort()).toEqual([alice.id, bob.id, eve.id].sort());
    const left = await call(h.app, "DELETE", `/api/conversations/${channel}/participants/${eve.id}`, {
      token: eve.token,
    });
    expect(left.status).toBe(204);
    expect((await view(alice)).body.member_count).toBe(READERS + 4);
  });
});

describe("GET /api/conversations/{id}/participants", () => {
  it("pages every member once, by user id, as members come and go between pages only where expected", async () => {
    const before = (await allMembers(channel)).map((p) => p.user_id).sort();
    expect(before).toHaveLength(READERS + 4);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    let changedAt = "";
    do {
      const res = await page(alice, `limit=200${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(200);
      seen.push(...ids(res.body.items));
      cursor = res.body.next_cursor;
      if (++pages === 3) {
        changedAt = seen.at(-1) as string;
        // Between the third page and the fourth: two added and two removed, one of each on each side.
        await h.deps.store.conversations.addParticipant(member(channel, `${reader(100)}a`));
        await h.deps.store.conversations.addParticipant(member(channel, `${reader(2500)}a`));
        await h.deps.store.conversations.removeParticipant(channel, reader(50));
        await h.deps.store.conversations.removeParticipant(channel, reader(2600));
      }
    } while (cursor);
    expect(changedAt > `${reader(100)}a` && changedAt < reader(2500)).toBe(true);
    // Every member there throughout once, in order; the one added after the cursor, and the one removed
    // before it (already listed), too; the other two not.
    const expected = [...before.filter((id) => id !== reader(2600)), `${reader(2500)}a`].sort();
    expect(seen).toEqual(expected);
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBe(Math.ceil(expected.length / 200));
    expect(readWhole).not.toContain(channel);
    await h.deps.store.conversations.removeParticipant(channel, `${reader(100)}a`);
    await h.deps.store.conversations.removeParticipant(channel, `${reader(2500)}a`);
    await h.deps.store.conversations.addParticipant(member(channel, reader(50)));
    await h.deps.store.conversations.addParticipant(member(channel, reader(2600)));
  });

  it("answers each member as a participant, 50 by default, with no cursor after the last", async () => {
    const first = await page(bob, "");
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(50);
    expect(first.body.items[0]).toEqual({
      user_id: expect.any(String),
      role: expect.stringMatching(/^(owner|admin|member)$/),
      joined_at: expect.any(String),
      joined_seq: expect.any(Number),
      last_read_seq: expect.any(Number),
    });
    const last = await page(
      bob,
      `limit=5&cursor=${Buffer.from(`user:${reader(READERS - 3)}`).toString("base64url")}`,
    );
    expect([ids(last.body.items), last.body.next_cursor]).toEqual([
      [reader(READERS - 2), reader(READERS - 1)],
      null,
    ]);
  });

  it("refuses a channel's readers (403 forbidden) and answers 404 to non-members, as every conversation route does", async () => {
    const refused = await page(carol, "limit=10");
    expect([refused.status, refused.body.error.code]).toEqual([403, "forbidden"]);
    const outsider = await page(await signup(h.app), "limit=10");
    expect([outsider.status, outsider.body.error.code]).toEqual([404, "not_found"]);
    const unknown = await get(alice, "/api/conversations/nope/participants");
    expect([unknown.status, unknown.body.error.code]).toEqual([404, "not_found"]);
    expect((await call(h.app, "GET", `/api/conversations/${channel}/participants`)).status).toBe(401);
  });

  it.each(BAD_MEMBER_PAGE_QUERIES)(
    "refuses %s with 422 validation_failed naming %s",
    async (query, field) => {
      const res = await page(alice, query);
      expect([res.status, res.body.error.code, res.body.error.field]).toEqual([
        422,
        "validation_failed",
        field,
      ]);
    },
  );
});

describe("dms and groups", () => {
  it("show every member in the view, counted, and let any member page through them", async () => {
    const room = await group(h.app, alice, [bob, carol, dave]);
    await call(h.app, "POST", `/api/conversations/${room}/participants`, {
      token: alice.token,
      body: { user_id: eve.id },
    });
    const everyone = [alice.id, bob.id, carol.id, dave.id, eve.id].sort();
    const seen = await get(dave, `/api/conversations/${room}`);
    expect([
      ids(seen.body.participants).sort(),
      seen.body.participant_ids.sort(),
      seen.body.member_count,
    ]).toEqual([everyone, everyone, 5]);
    const listed: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(
        dave,
        `/api/conversations/${room}/participants?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      );
      expect(res.status).toBe(200);
      listed.push(...ids(res.body.items));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(listed).toEqual(everyone);

    const dm = await call(h.app, "POST", "/api/conversations", {
      token: eve.token,
      body: { conversation_type: "dm", participant_ids: [dave.id] },
    });
    expect([dm.body.participant_ids.sort(), dm.body.member_count]).toEqual([[dave.id, eve.id].sort(), 2]);
    const members = await get(dave, `/api/conversations/${dm.body.id}/participants`);
    expect([ids(members.body.items), members.body.next_cursor]).toEqual([[dave.id, eve.id].sort(), null]);
  });
});
