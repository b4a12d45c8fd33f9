import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ConversationEvent } from "../../../src/realtime/hub.ts";
import { call, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
let carol: User;
beforeAll(async () => {
  h = await harness();
  [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
});
afterAll(() => h.close());

const create = (token: string, body: Record<string, unknown>) =>
  call(h.app, "POST", "/api/conversations", { token, body });

describe("creating conversations", () => {
  it("creates a group with the creator as owner: 201 with the full shape", async () => {
    const res = await create(alice.token, {
      conversation_type: "group",
      participant_ids: [bob.id, carol.id],
      name: "Team",
      topic: "plans",
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: "Team",
      topic: "plans",
      conversation_type: "group",
      encrypted: false,
      last_seq: 0,
      message_count: 0,
      last_message_id: null,
      created_by: alice.id,
      unread_count: 0,
    });
    expect(res.body.participant_ids.sort()).toEqual([alice.id, bob.id, carol.id].sort());
    const roles = Object.fromEntries(
      res.body.participants.map((p: { user_id: string; role: string }) => [p.user_id, p.role]),
    );
    expect(roles).toEqual({ [alice.id]: "owner", [bob.id]: "member", [carol.id]: "member" });
  });

  it("returns the existing dm with 200 when it is opened again, from either side", async () => {
    const first = await create(alice.token, { conversation_type: "dm", participant_ids: [carol.id] });
    expect(first.status).toBe(201);
    const again = await create(carol.token, {
      conversation_type: "dm",
      participant_ids: [alice.id, carol.id],
    });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });

  it.each([
    [[], "no other participant"],
    [["SELF"], "only the creator"],
    [["BOB", "CAROL"], "three people"],
  ])("refuses a dm with %p (%s): 422", async (ids) => {
    const map: Record<string, string> = { SELF: alice.id, BOB: bob.id, CAROL: carol.id };
    const res = await create(alice.token, {
      conversation_type: "dm",
      participant_ids: ids.map((i) => map[i]),
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
  });

  it("takes a dm's other participant named twice, with or without the creator, as one", async () => {
    const dave = await signup(h.app);
    const twice = await create(alice.token, { conversation_type: "dm", participant_ids: [dave.id, dave.id] });
    expect(twice.status).toBe(201);
    const withSelf = await create(alice.token, {
      conversation_type: "dm",
      participant_ids: [dave.id, dave.id, alice.id],
    });
    expect([withSelf.status, withSelf.body.id]).toEqual([200, twice.body.id]);
  });

  it("keeps a name trimmed, and refuses one of spaces alone (422 naming name), when made or renamed", async () => {
    const made = await create(alice.token, {
      conversation_type: "group",
      participant_ids: [bob.id],
      name: "  Plans \t",
    });
    expect([made.status, made.body.name]).toEqual([201, "Plans"]);
    const blank = await create(alice.token, {
      conversation_type: "group",
      participant_ids: [bob.id],
      name: " \n ",
    });
    expect([blank.status, blank.body.error.code, blank.body.error.field]).toEqual([
      422,
      "validation_failed",
      "name",
    ]);
    const rename = (name: string) =>
      call(h.app, "PUT", `/api/conversations/${made.body.id}`, { token: alice.token, body: { name } });
    const renamed = await rename("   ");
    expect([renamed.status, renamed.body.error.field]).toEqual([422, "name"]);
    expect((await rename(" Plans ")).body.name).toBe("Plans");
    // " Plans " is the name it has: no change, so nothing recorded.
    expect(
      (await call(h.app, "GET", `/api/conversations/${made.body.id}`, { token: alice.token })).body.last_seq,
    ).toBe(0);
  });

  it("refuses unknown participant ids with 422 validation_failed", async () => {
    const res = await create(alice.token, {
      conversation_type: "group",
      participant_ids: [bob.id, "00000000000000000000"],
    });
    expect(res.status).toBe(422);
    expect(res.body.error.field).toBe("participant_ids");
  });

  it("refuses a bad conversation_type with 422", async () => {
    const res = await create(alice.token, { conversation_type: "room", participant_ids: [bob.id] });
    expect(res.status).toBe(422);
  });
});

describe("listing, reading, updating, deleting", () => {
  it("lists the caller's conversations, most recent activity first, with a cursor", async () => {
    const dave = await signup(h.app);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      h.clock.advance(1000);
      const res = await create(dave.token, {
        conversation_type: "group",
        participant_ids: [bob.id],
        name: `g${i}`,
      });
      ids.push(res.body.id);
    }
    h.clock.advance(1000);
    await call(h.app, "POST", `/api/conversations/${ids[1]}/messages`, {
      token: dave.token,
      body: { content: "bump" },
    });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/conversations?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await call(h.app, "GET", url, { token: dave.token });
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((c: { id: string }) => c.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([1, 4, 3, 2, 0].map((i) => ids[i] as string));
  });

  it("moves a conversation up with every change in its log: an edit, a reaction, a delete, a rename", async () => {
    const frank = await signup(h.app);
    const ids: string[] = [];
    const firsts: string[] = [];
    for (let i = 0; i < 5; i++) {
      h.clock.advance(1000);
      const id = (await create(frank.token, { conversation_type: "group", participant_ids: [bob.id] })).body
        .id;
      const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
        token: frank.token,
        body: { content: `m${i}` },
      });
      ids.push(id);
      firsts.push(sent.body.id);
    }
    const order = async () =>
      (await call(h.app, "GET", "/api/conversations", { token: frank.token })).body.items.map(
        (c: { id: string }) => ids.indexOf(c.id),
      );
    expect(await order()).toEqual([4, 3, 2, 1, 0]);
    const changes: [number, () => Promise<unknown>][] = [
      [
        0,
        () =>
          call(h.app, "PUT", `/api/messages/${firsts[0]}`, { token: frank.token, body: { content: "e" } }),
      ],
      [
        1,
        () =>
          call(h.app, "POST", `/api/messages/${firsts[1]}/reactions`, {
            token: bob.token,
            body: { emoji: "👍" },
          }),
      ],
      [2, () => call(h.app, "DELETE", `/api/messages/${firsts[2]}`, { token: frank.token })],
      [
        3,
        () =>
          call(h.app, "PUT", `/api/conversations/${ids[3]}`, {
            token: frank.token,
            body: { name: "renamed" },
          }),
      ],
    ];
    for (const [i, change] of changes) {
      h.clock.advance(1000);
      await change();
      expect((await order())[0]).toBe(i);
    }
    expect(await order()).toEqual([3, 2, 1, 0, 4]);
  });

  it("pages every conversation once with order=created, oldest first, however their activity moves them", async () => {
    const erin = await signup(h.app);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      h.clock.advance(1000);
      made.push((await create(erin.token, { conversation_type: "group", participant_ids: [] })).body.id);
    }
    const pageAll = async (order: string) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const url: string = `/api/conversations?${order}limit=2${cursor ? `&cursor=${cursor}` : ""}`;
        const res = await call(h.app, "GET", url, { token: erin.token });
        expect(res.status).toBe(200);
        seen.push(...res.body.items.map((c: { id: string }) => c.id));
        cursor = res.body.next_cursor;
        // Those not listed yet get a message between two pages: by activity, each moves before the cursor.
        h.clock.advance(1000);
        for (const id of made.filter((m) => !seen.includes(m)))
          await call(h.app, "POST", `/api/conversations/${id}/messages`, {
            token: erin.token,
            body: { content: "moved" },
          });
      } while (cursor);
      return seen;
    };
    // Most recent activity first: the three not on the first page move above its cursor, never listed.
    expect(await pageAll("")).toEqual(made.slice(3).reverse());
    expect(await pageAll("order=created&")).toEqual(made);
  });

  it("refuses a cursor of one order given to the other, and an unknown order (422)", async () => {
    const fay = await signup(h.app);
    for (let i = 0; i < 3; i++) await create(fay.token, { conversation_type: "group", participant_ids: [] });
    const list = (query: string) => call(h.app, "GET", `/api/conversations?${query}`, { token: fay.token });
    const byActivity = (await list("limit=1")).body.next_cursor;
    const byCreation = (await list("order=created&limit=1")).body.next_cursor;
    expect(typeof byActivity).toBe("string");
    expect(typeof byCreation).toBe("string");
    expect((await list(`order=created&cursor=${byCreation}`)).body.items).toHaveLength(2);
    for (const query of [`order=created&cursor=${byActivity}`, `cursor=${byCreation}`, "order=name"]) {
      const res = await list(query);
      expect(res.status).toBe(422);
      expect(res.body.error.code).toBe("validation_failed");
    }
  });

  it("counts unread messages from others for the caller", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    for (const content of ["one", "two", "three"]) {
      await call(h.app, "POST", `/api/conversations/${g.body.id}/messages`, {
        token: alice.token,
        body: { content },
      });
    }
    const forBob = await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: bob.token });
    expect(forBob.body.unread_count).toBe(3);
    const forAlice = await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: alice.token });
    expect(forAlice.body.unread_count).toBe(0);
    await call(h.app, "POST", `/api/conversations/${g.body.id}/read`, { token: bob.token, body: { seq: 2 } });
    expect(
      (await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: bob.token })).body.unread_count,
    ).toBe(1);
  });

  it("renames (owner or admin), records it as a system message and publishes conversation.updated", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    const events: ConversationEvent[] = [];
    const off = h.deps.hub.subscribe(g.body.id, (e) => events.push(e));
    const res = await call(h.app, "PUT", `/api/conversations/${g.body.id}`, {
      token: alice.token,
      body: { name: "Renamed", topic: "t" },
    });
    off();
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: "Renamed", topic: "t", last_seq: 1 });
    expect(events.map((e) => e.kind)).toEqual(["conversation.updated"]);
    const history = await call(h.app, "GET", `/api/conversations/${g.body.id}/messages`, {
      token: bob.token,
    });
    expect(history.body.items[0].message_type).toBe("system");
    expect(JSON.parse(history.body.items[0].content)).toMatchObject({ event: "conversation.updated" });
  });

  it("lets either member of a dm name it, whichever of them opened it, as either may delete it", async () => {
    const dm = await create(carol.token, { conversation_type: "dm", participant_ids: [bob.id] });
    for (const [user, name] of [
      [bob, "From bob"],
      [carol, "From carol"],
    ] as const) {
      const res = await call(h.app, "PUT", `/api/conversations/${dm.body.id}`, {
        token: user.token,
        body: { name, topic: `${name}'s topic` },
      });
      expect([res.status, res.body.name, res.body.topic]).toEqual([200, name, `${name}'s topic`]);
    }
  });

  it("records nothing for a PUT that changes nothing: no system message, no seq", async () => {
    const g = await create(alice.token, {
      conversation_type: "group",
      participant_ids: [bob.id],
      name: "Same",
    });
    for (const body of [{}, { name: "Same" }]) {
      const res = await call(h.app, "PUT", `/api/conversations/${g.body.id}`, { token: alice.token, body });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ name: "Same", last_seq: 0 });
    }
    const renamed = await call(h.app, "PUT", `/api/conversations/${g.body.id}`, {
      token: alice.token,
      body: { name: "Same", topic: "new" },
    });
    expect(renamed.body).toMatchObject({ name: "Same", topic: "new", last_seq: 1 });
    const history = await call(h.app, "GET", `/api/conversations/${g.body.id}/messages`, {
      token: alice.token,
    });
    expect(history.body.items.map((m: { content: string }) => JSON.parse(m.content))).toEqual([
      { event: "conversation.updated", changes: { topic: "new" } },
    ]);
  });

  it("deletes a group (owner only) and a dm (either member)", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    expect(
      (await call(h.app, "DELETE", `/api/conversations/${g.body.id}`, { token: bob.token })).status,
    ).toBe(403);
    expect(
      (await call(h.app, "DELETE", `/api/conversations/${g.body.id}`, { token: alice.token })).status,
    ).toBe(204);
    expect((await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: alice.token })).status).toBe(
      404,
    );
    const dm = await create(bob.token, { conversation_type: "dm", participant_ids: [carol.id] });
    expect(
      (await call(h.app, "DELETE", `/api/conversations/${dm.body.id}`, { token: carol.token })).status,
    ).toBe(204);
  });
});

describe("participants", () => {
  it("adds (201, system message, event) and refuses duplicates (409) and unknown users (422)", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    const res = await call(h.app, "POST", `/api/conversations/${g.body.id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ user_id: carol.id, role: "member", last_read_seq: 0 });
    const again = await call(h.app, "POST", `/api/conversations/${g.body.id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("already_member");
    const ghost = await call(h.app, "POST", `/api/conversations/${g.body.id}/participants`, {
      token: alice.token,
      body: { user_id: "00000000000000000000" },
    });
    expect(ghost.status).toBe(422);
    expect((await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: carol.token })).status).toBe(
      200,
    );
  });

  it("starts an added member's part of the log just before the system message that added them; first members' at 0", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    const id = g.body.id as string;
    for (const content of ["one", "two"])
      await call(h.app, "POST", `/api/conversations/${id}/messages`, {
        token: alice.token,
        body: { content },
      });
    const added = await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    expect(added.body.joined_seq).toBe(2);
    const seen = await call(h.app, "GET", `/api/conversations/${id}`, { token: carol.token });
    const joined = Object.fromEntries(
      seen.body.participants.map((p: { user_id: string; joined_seq: number }) => [p.user_id, p.joined_seq]),
    );
    expect(joined).toEqual({ [alice.id]: 0, [bob.id]: 0, [carol.id]: 2 });
    const log = await call(h.app, "GET", `/api/conversations/${id}/events?after=2`, { token: carol.token });
    expect(log.body.items.map((m: { seq: number; message_type: string }) => [m.seq, m.message_type])).toEqual(
      [[3, "system"]],
    );
  });

  it("gives an added member nothing unread from before, and leaves what everyone had read read", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    const id = g.body.id as string;
    const send = async (content: string) =>
      (
        await call(h.app, "POST", `/api/conversations/${id}/messages`, {
          token: alice.token,
          body: { content },
        })
      ).body;
    const [first] = [await send("one"), await send("two")];
    await call(h.app, "POST", `/api/conversations/${id}/read`, { token: bob.token, body: { seq: 2 } });
    await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    const unread = async () =>
      (await call(h.app, "GET", `/api/conversations/${id}`, { token: carol.token })).body.unread_count;
    expect(await unread()).toBe(0);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    const statuses = page.body.items
      .filter((m: { message_type: string }) => m.message_type === "text")
      .map((m: { status: string }) => m.status);
    expect(statuses).toEqual(["read", "read"]);
    // Carol was not among those the first message was sent to.
    const before = await call(h.app, "GET", `/api/messages/${first.id}/receipts`, { token: alice.token });
    expect(before.body.items.map((r: { user_id: string }) => r.user_id)).toEqual([bob.id]);
    const after = await send("three");
    expect(await unread()).toBe(1);
    const receipts = await call(h.app, "GET", `/api/messages/${after.id}/receipts`, { token: alice.token });
    expect(receipts.body.items.map((r: { user_id: string }) => r.user_id).sort()).toEqual(
      [bob.id, carol.id].sort(),
    );
  });

  it("keeps a dm's participants fixed: 422 dm_participants_fixed", async () => {
    const dm = await create(alice.token, { conversation_type: "dm", participant_ids: [bob.id] });
    const res = await call(h.app, "POST", `/api/conversations/${dm.body.id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("dm_participants_fixed");
  });

  it("lets anyone leave, but not the last owner until ownership is handed over", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id, carol.id] });
    const path = (u: string) => `/api/conversations/${g.body.id}/participants/${u}`;
    expect((await call(h.app, "DELETE", path(carol.id), { token: carol.token })).status).toBe(204);
    const stuck = await call(h.app, "DELETE", path(alice.id), { token: alice.token });
    expect(stuck.status).toBe(409);
    expect(stuck.body.error.code).toBe("last_owner");
    const handover = await call(h.app, "PUT", path(bob.id), { token: alice.token, body: { role: "owner" } });
    expect(handover.status).toBe(200);
    expect(handover.body.role).toBe("owner");
    expect((await call(h.app, "DELETE", path(alice.id), { token: alice.token })).status).toBe(204);
    expect((await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: alice.token })).status).toBe(
      404,
    );
  });

  it("lets an admin remove a member but not an owner", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id, carol.id] });
    await call(h.app, "PUT", `/api/conversations/${g.body.id}/participants/${bob.id}`, {
      token: alice.token,
      body: { role: "admin" },
    });
    const path = (u: string) => `/api/conversations/${g.body.id}/participants/${u}`;
    expect((await call(h.app, "DELETE", path(alice.id), { token: bob.token })).status).toBe(403);
    expect((await call(h.app, "DELETE", path(carol.id), { token: bob.token })).status).toBe(204);
    expect((await call(h.app, "DELETE", path(carol.id), { token: bob.token })).status).toBe(404);
  });
});

describe("the same removal twice at once", () => {
  it("records one participant.removed, and answers the late one 404 like a removal made after it", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id, carol.id] });
    const id = g.body.id as string;
    const events: ConversationEvent[] = [];
    const off = h.deps.hub.subscribe(id, (e) => events.push(e));
    // Carol taps "leave" twice, while Alice removes her too: all three pass their membership checks
    // before the first removal lands.
    const { conversations } = h.deps;
    const answers = await Promise.allSettled([
      conversations.removeParticipant(id, carol.id, carol.id),
      conversations.removeParticipant(id, carol.id, carol.id),
      conversations.removeParticipant(id, alice.id, carol.id),
    ]);
    off();
    expect(answers.map((a) => (a.status === "fulfilled" ? "removed" : a.reason.code)).sort()).toEqual([
      "not_found",
      "not_found",
      "removed",
    ]);
    expect(events.filter((e) => e.kind === "participant.removed")).toHaveLength(1);
    const log = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    const records = log.body.items.map((m: { content: string }) => JSON.parse(m.content).event);
    expect(records).toEqual(["participant.removed"]);
  });
});

describe("the last owner, when two owners step down at once", () => {
  const owners = async (id: string) =>
    (await h.deps.store.conversations.participants(id))
      .filter((p) => p.role === "owner")
      .map((p) => p.user_id);

  async function twoOwners() {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id, carol.id] });
    const id = g.body.id as string;
    await h.deps.conversations.setRole(id, alice.id, bob.id, "owner");
    return id;
  }
  const outcome = (a: PromiseSettledResult<unknown>) => (a.status === "fulfilled" ? "done" : a.reason.code);

  it("lets one of two owners leaving at the same moment go, and keeps the other (409 last_owner)", async () => {
    const id = await twoOwners();
    const answers = await Promise.allSettled([
      h.deps.conversations.removeParticipant(id, alice.id, alice.id),
      h.deps.conversations.removeParticipant(id, bob.id, bob.id),
    ]);
    expect(answers.map(outcome).sort()).toEqual(["done", "last_owner"]);
    expect(await owners(id)).toHaveLength(1);
  });

  it("lets one of two owners demoting each other at the same moment do it, not both", async () => {
    const id = await twoOwners();
    const answers = await Promise.allSettled([
      h.deps.conversations.setRole(id, alice.id, bob.id, "member"),
      h.deps.conversations.setRole(id, bob.id, alice.id, "member"),
    ]);
    expect(answers.map(outcome).sort()).toEqual(["done", expect.stringMatching(/^(last_owner|forbidden)$/)]);
    expect(await owners(id)).toHaveLength(1);
  });

  it("keeps an owner when one leaves as the other demotes themselves", async () => {
    const id = await twoOwners();
    const answers = await Promise.allSettled([
      h.deps.conversations.removeParticipant(id, alice.id, alice.id),
      h.deps.conversations.setRole(id, bob.id, bob.id, "admin"),
    ]);
    expect(answers.map(outcome).sort()).toEqual(["done", "last_owner"]);
    expect(await owners(id)).toHaveLength(1);
  });
});

describe("a conversation deleted while a write to it is on its way", () => {
  // The delete lands between the write's membership check and its append to the log: the store's
  // append is made to delete the conversation first, as the race would.
  const writes: [string, (id: string) => Promise<{ status: number; body: any }>][] = [
    [
      "a message",
      (id) =>
        call(h.app, "POST", `/api/conversations/${id}/messages`, {
          token: bob.token,
          body: { content: "hi" },
        }),
    ],
    [
      "a rename",
      (id) => call(h.app, "PUT", `/api/conversations/${id}`, { token: alice.token, body: { name: "late" } }),
    ],
    [
      "a new participant",
      (id) =>
        call(h.app, "POST", `/api/conversations/${id}/participants`, {
          token: alice.token,
          body: { user_id: carol.id },
        }),
    ],
    [
      "a role change",
      (id) =>
        call(h.app, "PUT", `/api/conversations/${id}/participants/${bob.id}`, {
          token: alice.token,
          body: { role: "admin" },
        }),
    ],
    [
      "a member leaving",
      (id) => call(h.app, "DELETE", `/api/conversations/${id}/participants/${bob.id}`, { token: bob.token }),
    ],
  ];

  it("answers a new participant with 404 when the deletion lands before the member is added", async () => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    const conversations = h.deps.store.conversations;
    const realAdd = conversations.addParticipant.bind(conversations);
    conversations.addParticipant = async (p) => {
      await conversations.delete(p.conversation_id);
      return realAdd(p);
    };
    try {
      const res = await call(h.app, "POST", `/api/conversations/${g.body.id}/participants`, {
        token: alice.token,
        body: { user_id: carol.id },
      });
      expect([res.status, res.body.error?.code]).toEqual([404, "not_found"]);
    } finally {
      conversations.addParticipant = realAdd;
    }
    expect(await conversations.idsForUser(carol.id)).not.toContain(g.body.id);
  });

  it.each(writes)("answers %s with 404 not_found, not a 500", async (_, write) => {
    const g = await create(alice.token, { conversation_type: "group", participant_ids: [bob.id] });
    const messages = h.deps.store.messages;
    const realAppend = messages.append.bind(messages);
    messages.append = async (draft) => {
      await h.deps.store.conversations.delete(draft.conversation_id);
      return realAppend(draft);
    };
    try {
      const res = await write(g.body.id);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    } finally {
      messages.append = realAppend;
    }
    expect((await call(h.app, "GET", `/api/conversations/${g.body.id}`, { token: alice.token })).status).toBe(
      404,
    );
  });
});
