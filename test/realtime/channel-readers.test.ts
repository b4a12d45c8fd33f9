// A channel's readers come and go without the channel's log or its other members knowing: their add or
// removal is told to their own sockets alone (which join or leave the conversation), takes no seq, and
// names them to nobody else. Changes of its staff (owners, admins) stay in the log, as do dms' and groups'.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Encoding } from "../../src/realtime/frames.ts";
import { call, type Harness, harness, signup } from "../helpers.ts";
import { type Frame, type TestSocket, userSocket } from "./ws-client.ts";

let h: Harness;
let base: string;
type User = Awaited<ReturnType<typeof signup>>;
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness();
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

const socket = (u: User, encoding: Encoding = "msgpack") => userSocket(base, u, encoding, open);
const said = (text: string) => (f: Frame) => f.type === "event" && f.message?.content === text;
/**
 * Whether an event frame names the user anywhere (its fields, or a system message's content). Presence is
 * not a log's event: a channel's owners and admins and its readers see each other's, as ever.
 */
const names = (userId: string) => (f: Frame) => f.type === "event" && JSON.stringify(f).includes(userId);
/** Whether any frame names the user: what another reader must never get of them. */
const mentions = (userId: string) => (f: Frame) => JSON.stringify(f).includes(userId);

/** A channel of `owner` with `admin` promoted and `readers` as readers, with a post in it; its id. */
async function channel(owner: User, admin: User, readers: User[]): Promise<string> {
  const made = await call(h.app, "POST", "/api/conversations", {
    token: owner.token,
    body: {
      conversation_type: "channel",
      name: "news",
      participant_ids: [admin.id, ...readers.map((r) => r.id)],
    },
  });
  expect(made.status).toBe(201);
  const id = made.body.id as string;
  const promoted = await call(h.app, "PUT", `/api/conversations/${id}/participants/${admin.id}`, {
    token: owner.token,
    body: { role: "admin" },
  });
  expect(promoted.status).toBe(200);
  await post(owner, id, "history");
  return id;
}
async function post(u: User, id: string, content: string) {
  const res = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
    token: u.token,
    body: { content },
  });
  expect(res.status).toBe(201);
  return res.body as { seq: number };
}
const get = (u: User, path: string) => call(h.app, "GET", path, { token: u.token });
const add = (by: User, id: string, user: User, role?: string) =>
  call(h.app, "POST", `/api/conversations/${id}/participants`, {
    token: by.token,
    body: { user_id: user.id, ...(role ? { role } : {}) },
  });
const remove = (by: User, id: string, user: User) =>
  call(h.app, "DELETE", `/api/conversations/${id}/participants/${user.id}`, { token: by.token });

describe("a channel's reader added", () => {
  it("writes nothing in the log, tells no other member, and brings the reader's socket in from where they joined", async () => {
    const [owner, admin, reader, newcomer] = await Promise.all(
      Array.from({ length: 4 }, () => signup(h.app)),
    );
    const id = await channel(owner, admin, [reader]);
    const before = (await get(reader, `/api/conversations/${id}`)).body;
    const [o, r, n] = [await socket(owner), await socket(reader, "json"), await socket(newcomer)];

    expect((await add(admin, id, newcomer)).status).toBe(201);
    const told = await n.next((f) => f.type === "event" && f.kind === "participant.added");
    // No seq of its own; where the reader's part of the log starts.
    expect(told).toMatchObject({
      conversation_id: id,
      seq: 0,
      user_id: newcomer.id,
      role: "member",
      joined_seq: before.last_seq,
      by: admin.id,
    });
    const after = (await get(reader, `/api/conversations/${id}`)).body;
    expect([after.last_seq, after.last_activity, after.unread_count]).toEqual([
      before.last_seq,
      before.last_activity,
      before.unread_count,
    ]);
    expect(after.member_count).toBe(before.member_count + 1);
    expect((await get(owner, `/api/conversations/${id}/events?after=${before.last_seq}`)).body.items).toEqual(
      [],
    );
    const joined = (await get(newcomer, `/api/conversations/${id}`)).body;
    expect(joined.participants.find((p: { user_id: string }) => p.user_id === newcomer.id).joined_seq).toBe(
      before.last_seq,
    );

    // The next post reaches the newcomer; before it, nobody else heard a word naming them.
    const next = await post(owner, id, "after the add");
    expect(next.seq).toBe(before.last_seq + 1);
    for (const s of [o, r, n]) await s.next(said("after the add"));
    expect(o.frames.filter(names(newcomer.id))).toEqual([]);
    expect(r.frames.filter(mentions(newcomer.id))).toEqual([]);
    expect(n.frames.filter((f) => f.type === "event").map((f) => [f.kind, f.seq])).toEqual([
      ["participant.added", 0],
      ["message.created", next.seq],
    ]);
  });

  it("resumes a reader added while away from where they joined, with nothing before it", async () => {
    const [owner, admin, newcomer] = await Promise.all(Array.from({ length: 3 }, () => signup(h.app)));
    const id = await channel(owner, admin, []);
    expect((await add(owner, id, newcomer)).status).toBe(201);
    const joined = (await get(newcomer, `/api/conversations/${id}`)).body.participants.find(
      (p: { user_id: string }) => p.user_id === newcomer.id,
    ).joined_seq as number;
    const away = await post(owner, id, "while away");
    const n = await socket(newcomer);
    n.send({ type: "resume", ref: 1, positions: { [id]: joined } });
    await n.next((f) => f.type === "resumed" && f.ref === 1);
    expect(n.frames.filter((f) => f.type === "event").map((f) => [f.seq, f.message?.content])).toEqual([
      [away.seq, "while away"],
    ]);
  });
});

describe("a channel's reader removed", () => {
  it("writes nothing in the log, tells no other member, and takes the reader's sockets out", async () => {
    const [owner, admin, reader, leaver, quitter] = await Promise.all(
      Array.from({ length: 5 }, () => signup(h.app)),
    );
    const id = await channel(owner, admin, [reader, leaver, quitter]);
    const before = (await get(reader, `/api/conversations/${id}`)).body;
    const [o, r, l, q] = [
      await socket(owner),
      await socket(reader),
      await socket(leaver),
      await socket(quitter),
    ];

    expect((await remove(admin, id, leaver)).status).toBe(204);
    // Leaving is the same.
    expect((await remove(quitter, id, quitter)).status).toBe(204);
    for (const [s, u, by] of [
      [l, leaver, admin],
      [q, quitter, quitter],
    ] as const)
      expect(await s.next((f) => f.type === "event" && f.kind === "participant.removed")).toMatchObject({
        conversation_id: id,
        seq: 0,
        user_id: u.id,
        by: by.id,
      });
    const after = (await get(reader, `/api/conversations/${id}`)).body;
    expect([after.last_seq, after.last_activity, after.unread_count]).toEqual([
      before.last_seq,
      before.last_activity,
      before.unread_count,
    ]);
    expect(after.member_count).toBe(before.member_count - 2);
    expect((await get(owner, `/api/conversations/${id}/events?after=${before.last_seq}`)).body.items).toEqual(
      [],
    );

    await post(owner, id, "after they left");
    for (const s of [o, r]) await s.next(said("after they left"));
    for (const u of [leaver, quitter]) {
      expect(o.frames.filter(names(u.id))).toEqual([]);
      expect(r.frames.filter(mentions(u.id))).toEqual([]);
    }
    await Bun.sleep(30);
    for (const s of [l, q]) expect(s.frames.filter(said("after they left"))).toEqual([]);
  });
});

describe("a channel's staff", () => {
  it("stays in the log: an admin added, a reader promoted, an admin demoted, an admin removed", async () => {
    const [owner, admin, reader, staff, promoted] = await Promise.all(
      Array.from({ length: 5 }, () => signup(h.app)),
    );
    const id = await channel(owner, admin, [reader, promoted]);
    const r = await socket(reader);
    const start = (await get(reader, `/api/conversations/${id}`)).body.last_seq as number;
    expect((await add(owner, id, staff, "admin")).status).toBe(201);
    for (const role of ["admin", "member"]) {
      const res = await call(h.app, "PUT", `/api/conversations/${id}/participants/${promoted.id}`, {
        token: owner.token,
        body: { role },
      });
      expect(res.status).toBe(200);
    }
    expect((await remove(owner, id, staff)).status).toBe(204);
    const expected = [
      ["participant.added", staff.id],
      ["participant.updated", promoted.id],
      ["participant.updated", promoted.id],
      ["participant.removed", staff.id],
    ];
    const logged = (await get(reader, `/api/conversations/${id}/events?after=${start}`)).body.items;
    expect(
      logged
        .map((m: { content: string }) => JSON.parse(m.content))
        .map((c: Record<string, string>) => [c.event, c.user_id]),
    ).toEqual(expected);
    await r.next((f) => f.type === "event" && f.seq === start + 4);
    expect(r.frames.filter((f) => f.type === "event").map((f) => [f.kind, f.user_id, f.seq])).toEqual(
      expected.map(([kind, user], i) => [kind, user, start + 1 + i]),
    );
  });

  it("leaves a group's members added and removed in its log", async () => {
    const [owner, member, newcomer] = await Promise.all(Array.from({ length: 3 }, () => signup(h.app)));
    const made = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "group", participant_ids: [member.id] },
    });
    const id = made.body.id as string;
    const m = await socket(member);
    expect((await add(owner, id, newcomer)).status).toBe(201);
    expect((await remove(owner, id, newcomer)).status).toBe(204);
    await m.next((f) => f.type === "event" && f.kind === "participant.removed" && f.user_id === newcomer.id);
    expect(
      m.frames
        .filter((f) => f.type === "event")
        .map((f) => [f.kind, f.user_id, f.seq, f.message?.message_type]),
    ).toEqual([
      ["participant.added", newcomer.id, 1, "system"],
      ["participant.removed", newcomer.id, 2, "system"],
    ]);
  });
});
