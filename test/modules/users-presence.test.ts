// Who sees a user's status and last_seen over REST: the user and their peers, the users their presence
// frames go to (store peersOf: sharing a conversation, two readers of one channel not counting); null to
// anyone else, alike by id, in the list and in a search.

import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup, waitFor } from "../helpers.ts";
import { type TestSocket, userSocket } from "../realtime/ws-client.ts";

type User = Awaited<ReturnType<typeof signup>>;

let h: Harness;
let base: string;
const open: TestSocket[] = [];
beforeAll(async () => {
  h = await harness();
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(async () => {
  await h.app.stop(true);
  await h.close();
});

const socket = (u: User) => userSocket(base, u, "json", open);

const statusInStore = async (u: User) => (await h.deps.store.users.byId(u.id))?.status;

/**
 * `target` as `viewer` gets them by id, in a search by username and in the plain list (paged through):
 * the three must agree; answers what they show of presence.
 */
async function presenceSeen(viewer: User, target: User) {
  const byId = await call(h.app, "GET", `/api/users/${target.id}`, { token: viewer.token });
  expect(byId.status).toBe(200);
  const search = await call(h.app, "GET", `/api/users?q=${target.username}`, { token: viewer.token });
  expect(search.status).toBe(200);
  const searched = search.body.items.find((u: { id: string }) => u.id === target.id);
  let listed: unknown;
  let cursor: string | null = null;
  do {
    const url: string = `/api/users?limit=100${cursor ? `&cursor=${cursor}` : ""}`;
    const page = await call(h.app, "GET", url, { token: viewer.token });
    expect(page.status).toBe(200);
    listed ??= page.body.items.find((u: { id: string }) => u.id === target.id);
    cursor = page.body.next_cursor;
  } while (cursor && !listed);
  expect(searched).toEqual(byId.body);
  expect(listed).toEqual(byId.body);
  return { status: byId.body.status, last_seen: byId.body.last_seen };
}

describe("a user's status and last_seen over REST", () => {
  it("are shown to themself and their dm and group peers, and null to a stranger, by id, list and search", async () => {
    const [alice, bob, carol, eve] = [
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
    ];
    await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const room = await group(h.app, carol, [alice]);
    const b = await socket(bob);
    // Online, then offline with last_seen, then online again: last_seen stays.
    const first = await socket(alice);
    await b.next((f) => f.type === "presence" && f.user_id === alice.id && f.status === "online");
    first.close();
    const offline = await b.next(
      (f) => f.type === "presence" && f.user_id === alice.id && f.status === "offline",
    );
    await socket(alice);
    await waitFor(async () => ((await statusInStore(alice)) === "online" ? true : undefined));
    const shown = { status: "online", last_seen: offline.last_seen };
    expect(offline.last_seen).toEqual(expect.any(String));
    expect(await presenceSeen(alice, alice)).toEqual(shown);
    expect(await presenceSeen(bob, alice)).toEqual(shown);
    expect(await presenceSeen(carol, alice)).toEqual(shown);
    expect(await presenceSeen(eve, alice)).toEqual({ status: null, last_seen: null });
    // The rest of the user is there for everyone.
    const seen = await call(h.app, "GET", `/api/users/${alice.id}`, { token: eve.token });
    expect(seen.body).toMatchObject({
      id: alice.id,
      username: alice.username,
      display_name: alice.display_name,
    });
    // The member list of a conversation carries no presence at all.
    const listed = await call(h.app, "GET", `/api/conversations/${room}`, { token: carol.token });
    expect(listed.status).toBe(200);
    for (const p of listed.body.participants) {
      expect(p).not.toHaveProperty("status");
      expect(p).not.toHaveProperty("last_seen");
    }
    // The user themself, wherever their own user is answered.
    const me = await call(h.app, "GET", "/api/auth/me", { token: alice.token });
    expect(me.body).toMatchObject(shown);
  });

  it("matches the presence frames in a channel: readers see its owner and admins and are seen by them, not each other", async () => {
    const [owner, admin, r1, r2] = [
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
      await signup(h.app),
    ];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [admin.id, r1.id, r2.id] },
    });
    expect(made.status).toBe(201);
    expect(
      (
        await call(h.app, "PUT", `/api/conversations/${made.body.id}/participants/${admin.id}`, {
          token: owner.token,
          body: { role: "admin" },
        })
      ).status,
    ).toBe(200);
    const o = await socket(owner);
    const first = await socket(r1);
    await socket(admin);
    const second = await socket(r2);
    await o.next((f) => f.type === "presence" && f.user_id === r2.id && f.status === "online");
    second.send({ type: "presence_update", status: "away" });
    await o.next((f) => f.type === "presence" && f.user_id === r2.id && f.status === "away");
    // The owner's change after it: had r2's reached r1, it would have come first.
    o.send({ type: "presence_update", status: "dnd" });
    const told = await first.next(
      (f) => f.type === "presence" && f.user_id === owner.id && f.status === "dnd",
    );
    expect(first.frames.some((f) => f.type === "presence" && f.user_id === r2.id)).toBe(false);
    // r1 sees over REST what the frames showed: the owner, and not r2.
    expect(await presenceSeen(r1, owner)).toEqual({ status: "dnd", last_seen: told.last_seen });
    expect(await presenceSeen(r1, r2)).toEqual({ status: null, last_seen: null });
    expect(await presenceSeen(r2, r1)).toEqual({ status: null, last_seen: null });
    expect((await presenceSeen(owner, r2)).status).toBe("away");
    expect((await presenceSeen(admin, r2)).status).toBe("away");
    expect((await presenceSeen(r2, admin)).status).toBe("online");
    // Every pair: shown exactly when the viewer is among those the target's presence frames go to.
    const everyone = [owner, admin, r1, r2];
    for (const target of everyone) {
      const told = new Set(await h.deps.store.conversations.peersOf(target.id));
      for (const viewer of everyone) {
        const seen = await presenceSeen(viewer, target);
        expect({ viewer: viewer.username, target: target.username, shown: seen.status !== null }).toEqual({
          viewer: viewer.username,
          target: target.username,
          shown: told.has(viewer.id),
        });
      }
    }
  });

  it("stops being shown to a member removed from the only conversation they shared, and again when they are back", async () => {
    const [alice, carol] = [await signup(h.app), await signup(h.app)];
    const room = await group(h.app, alice, [carol]);
    expect((await presenceSeen(carol, alice)).status).toBe("offline");
    expect((await presenceSeen(alice, carol)).status).toBe("offline");
    const removed = await call(h.app, "DELETE", `/api/conversations/${room}/participants/${carol.id}`, {
      token: alice.token,
    });
    expect(removed.status).toBe(204);
    expect(await presenceSeen(carol, alice)).toEqual({ status: null, last_seen: null });
    expect(await presenceSeen(alice, carol)).toEqual({ status: null, last_seen: null });
    await call(h.app, "POST", `/api/conversations/${room}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    expect((await presenceSeen(carol, alice)).status).toBe("offline");
    // A dm deleted: no longer peers either.
    const dm = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [carol.id] },
    });
    await call(h.app, "DELETE", `/api/conversations/${room}`, { token: alice.token });
    expect((await presenceSeen(carol, alice)).status).toBe("offline");
    await call(h.app, "DELETE", `/api/conversations/${dm.body.id}`, { token: carol.token });
    expect(await presenceSeen(carol, alice)).toEqual({ status: null, last_seen: null });
  });

  it("leaves nothing else in the user that tells a stranger when they come and go or choose a status", async () => {
    const [alice, bob, eve] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const view = async (viewer: User) =>
      (await call(h.app, "GET", `/api/users/${alice.id}`, { token: viewer.token })).body;
    const before = await view(eve);
    const later = async () => {
      h.clock.advance(60_000);
      expect(await view(eve)).toEqual(before);
      expect((await view(bob)).updated_at).toBe(before.updated_at);
    };
    await later();
    const a = await socket(alice);
    await waitFor(async () => ((await statusInStore(alice)) === "online" ? true : undefined));
    await later();
    a.send({ type: "presence_update", ref: "away", status: "away" });
    await a.next((f) => f.type === "ok" && f.ref === "away");
    expect((await view(bob)).status).toBe("away");
    await later();
    const chose = await call(h.app, "PUT", `/api/users/${alice.id}`, {
      token: alice.token,
      body: { status: "dnd" },
    });
    expect(chose.body).toMatchObject({ status: "dnd", updated_at: before.updated_at });
    await later();
    a.close();
    await waitFor(async () => ((await statusInStore(alice)) === "offline" ? true : undefined));
    expect((await view(bob)).last_seen).toBe(new Date(h.clock.now()).toISOString());
    await later();
    // The boot of a lone node writing everyone offline leaves it too.
    await socket(alice);
    await waitFor(async () => ((await statusInStore(alice)) === "dnd" ? true : undefined));
    await h.deps.store.users.allOffline(h.clock.now());
    await later();
    // A profile change is one everyone sees, and moves it.
    await call(h.app, "PUT", `/api/users/${alice.id}`, {
      token: alice.token,
      body: { display_name: "Alice B." },
    });
    expect(Date.parse((await view(eve)).updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
  });

  it("asks the store once for a whole page, however many users are on it", async () => {
    const viewer = await signup(h.app);
    const others = [];
    for (let i = 0; i < 5; i++) others.push(await signup(h.app));
    await group(h.app, viewer, others.slice(0, 2));
    const repo = h.deps.store.conversations;
    const { peersAmong, peersOf } = repo;
    const asked: string[][] = [];
    let whole = 0;
    repo.peersAmong = (userId, ids) => {
      asked.push([...ids]);
      return peersAmong.call(repo, userId, ids);
    };
    repo.peersOf = (userId) => {
      whole++;
      return peersOf.call(repo, userId);
    };
    try {
      const page = await call(h.app, "GET", "/api/users?limit=100", { token: viewer.token });
      expect(page.body.items.length).toBeGreaterThan(6);
      expect(asked).toHaveLength(1);
      // The viewer is shown their own without asking.
      expect(asked[0]).toHaveLength(page.body.items.length - 1);
      const shown = page.body.items.filter((u: { status: string | null }) => u.status !== null);
      expect(shown.map((u: { id: string }) => u.id).sort()).toEqual(
        [viewer.id, others[0]?.id, others[1]?.id].sort(),
      );
      asked.length = 0;
      await call(h.app, "GET", `/api/users/${viewer.id}`, { token: viewer.token });
      expect(asked).toHaveLength(0);
      await call(h.app, "GET", `/api/users/${others[4]?.id}`, { token: viewer.token });
      expect(asked).toEqual([[others[4]?.id as string]]);
      expect(whole).toBe(0);
    } finally {
      repo.peersAmong = peersAmong;
      repo.peersOf = peersOf;
    }
  });

  it("says so in the OpenAPI document: another user's status may be null, your own never", async () => {
    const doc = (await call(h.app, "GET", "/docs/json")).body;
    const schemaOf = (path: string, method = "get") =>
      doc.paths[path][method].responses["200"].content["application/json"].schema;
    /** The values the document allows for a schema, tried against a tiny JSON Schema subset. */
    const allows = (schema: Record<string, any>, value: unknown): boolean => {
      if (schema.anyOf) return schema.anyOf.some((s: Record<string, any>) => allows(s, value));
      if (schema.enum && !schema.enum.includes(value)) return false;
      if (schema.const !== undefined && schema.const !== value) return false;
      const types = [schema.type].flat();
      return types.includes(value === null ? "null" : typeof value);
    };
    const user = schemaOf("/api/users/{id}");
    expect(allows(user.properties.status, null)).toBe(true);
    expect(allows(user.properties.status, "away")).toBe(true);
    expect(allows(user.properties.status, "asleep")).toBe(false);
    expect(allows(user.properties.last_seen, null)).toBe(true);
    expect(allows(schemaOf("/api/users").properties.items.items.properties.status, null)).toBe(true);
    for (const own of [schemaOf("/api/auth/me"), schemaOf("/api/users/{id}", "put")]) {
      expect(allows(own.properties.status, null)).toBe(false);
      expect(allows(own.properties.status, "dnd")).toBe(true);
    }
    expect(allows(schemaOf("/api/auth/signin", "post").properties.user.properties.status, null)).toBe(false);
  });

  it("answers bad inputs as before", async () => {
    const eve = await signup(h.app);
    const cases: [string, string | undefined, number, string][] = [
      [`/api/users/${eve.id}`, undefined, 401, "unauthorized"],
      ["/api/users", undefined, 401, "unauthorized"],
      ["/api/users/00000000000000000000", eve.token, 404, "not_found"],
      [`/api/users/${"x".repeat(65)}`, eve.token, 422, "validation_failed"],
      ["/api/users?limit=0", eve.token, 422, "validation_failed"],
      ["/api/users?cursor=%00%01", eve.token, 422, "validation_failed"],
    ];
    for (const [path, token, status, code] of cases) {
      const res = await call(h.app, "GET", path, token ? { token } : {});
      expect({ path, status: res.status, code: res.body?.error?.code }).toEqual({ path, status, code });
    }
  });
});
