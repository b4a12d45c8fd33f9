// A resume's receipts: where the members' delivered and read positions stand, for the conversations the
// client asks about (`receipts` in its resume), skipped while they stay at the version it holds; and the
// replayed messages' status as it is now. Over real sockets, in every encoding.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Encoding } from "../../src/realtime/frames.ts";
import type { ConversationsRepo } from "../../src/store/types.ts";
import { call, group, type Harness, harness, signup } from "../helpers.ts";
import { type Frame, type TestSocket, userSocket } from "./ws-client.ts";

let h: Harness;
let base: string;
type User = Awaited<ReturnType<typeof signup>>;
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness({ RESUME_MAX: "5" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

const socket = (u: User, encoding: Encoding = "json") => userSocket(base, u, encoding, open);

let refs = 0;
/** Sends a resume and answers the frames that came for it, up to its last conversation's resumed. */
async function resume(s: TestSocket, frame: Record<string, unknown>, last: string): Promise<Frame[]> {
  const ref = `r${++refs}`;
  const from = s.frames.length;
  s.send({ type: "resume", ref, ...frame });
  await s.next(
    (f) => f.ref === ref && (f.type === "resumed" || f.type === "resync") && f.conversation_id === last,
  );
  return s.frames.slice(from).filter((f) => f.ref === ref || f.type === "event" || f.type === "receipts");
}

async function post(u: User, conversationId: string, content: string): Promise<{ id: string; seq: number }> {
  const res = await call(h.app, "POST", `/api/conversations/${conversationId}/messages`, {
    token: u.token,
    body: { content },
  });
  expect(res.status).toBe(201);
  return res.body;
}

const read = (u: User, conversationId: string, seq: number) =>
  call(h.app, "POST", `/api/conversations/${conversationId}/read`, { token: u.token, body: { seq } });

const byUser = <T extends { user_id: string }>(members: T[]) =>
  [...members].sort((a, b) => a.user_id.localeCompare(b.user_id));

describe("a resume's receipts", () => {
  it("tells a resume that asks every member's positions in a group, then nothing while they stay at the version it holds", async () => {
    const [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob, carol]);
    const m = await post(alice, id, "hello");
    await read(bob, id, m.seq);
    const s = await socket(alice);

    const first = await resume(s, { positions: { [id]: m.seq }, receipts: { [id]: null } }, id);
    expect(first.map((f) => f.type)).toEqual(["receipts", "resumed"]);
    const snapshot = first[0] as Frame;
    expect(snapshot.conversation_id).toBe(id);
    expect(snapshot.version).toBeInteger();
    expect(byUser(snapshot.members)).toEqual(
      byUser([
        { user_id: alice.id, delivered: 0, read: 0 },
        { user_id: bob.id, delivered: m.seq, read: m.seq },
        { user_id: carol.id, delivered: 0, read: 0 },
      ]),
    );

    // At the version it holds: nothing more than the resume's own answer.
    const again = await resume(s, { positions: { [id]: m.seq }, receipts: { [id]: snapshot.version } }, id);
    expect(again.map((f) => f.type)).toEqual(["resumed"]);

    // Carol fetches (a delivery): the version moves, and the next resume is told.
    await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: carol.token });
    const moved = await resume(s, { positions: { [id]: m.seq }, receipts: { [id]: snapshot.version } }, id);
    expect(moved.map((f) => f.type)).toEqual(["receipts", "resumed"]);
    expect(moved[0]?.version).toBeGreaterThan(snapshot.version);
    expect(moved[0]?.members.find((p: Frame) => p.user_id === carol.id)).toEqual({
      user_id: carol.id,
      delivered: m.seq,
      read: 0,
    });

    // A resume that does not ask (a client of before) is told nothing of receipts.
    expect((await resume(s, { positions: { [id]: m.seq } }, id)).map((f) => f.type)).toEqual(["resumed"]);
  });

  it("comes after the conversation's replayed changes, before its resumed, and only for the conversations asked about", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const [asked, notAsked] = [await group(h.app, alice, [bob]), await group(h.app, alice, [bob])];
    await post(bob, asked, "one");
    await post(bob, notAsked, "two");
    const s = await socket(alice);
    const frames = await resume(
      s,
      { positions: { [asked]: 0, [notAsked]: 0 }, receipts: { [asked]: null } },
      notAsked,
    );
    expect(frames.map((f) => [f.type, f.conversation_id])).toEqual([
      ["event", asked],
      ["receipts", asked],
      ["resumed", asked],
      ["event", notAsked],
      ["resumed", notAsked],
    ]);
  });

  it("is sent before a resync too", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    for (let i = 0; i < 7; i++) await post(bob, id, `m${i}`);
    const s = await socket(alice);
    const frames = await resume(s, { positions: { [id]: 0 }, receipts: { [id]: null } }, id);
    expect(frames.map((f) => f.type)).toEqual(["receipts", "resync"]);
  });

  it("in a channel tells the member their own positions alone, with no version", async () => {
    const [owner, reader, other] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const created = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [reader.id, other.id] },
    });
    const id = created.body.id as string;
    const m = await post(owner, id, "news");
    await read(reader, id, m.seq);
    await read(other, id, m.seq);
    for (const [who, position] of [
      [reader, m.seq],
      [owner, 0],
    ] as const) {
      const s = await socket(who);
      const frames = await resume(s, { positions: { [id]: m.seq }, receipts: { [id]: 7 } }, id);
      expect(frames[0]).toEqual({
        type: "receipts",
        conversation_id: id,
        members: [{ user_id: who.id, delivered: position, read: position }],
      });
      expect(frames.map((f) => f.type)).toEqual(["receipts", "resumed"]);
    }
  });

  it("is the same frame in every encoding", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const m = await post(alice, id, "hi");
    await read(bob, id, m.seq);
    const got: Frame[] = [];
    for (const encoding of ["json", "msgpack", "msgpackr"] as const) {
      const s = await socket(alice, encoding);
      const frames = await resume(s, { positions: { [id]: m.seq }, receipts: { [id]: null } }, id);
      got.push(frames[0] as Frame);
    }
    expect(got[0]?.type).toBe("receipts");
    expect(got[1]).toEqual(got[0] as Frame);
    expect(got[2]).toEqual(got[0] as Frame);
  });
});

describe("a resume's replayed messages", () => {
  it("say each message's status as it is now, not sent", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const [m1, m2, m3] = [
      await post(alice, id, "one"),
      await post(alice, id, "two"),
      await post(alice, id, "three"),
    ];
    await read(bob, id, m1.seq);
    const s = await socket(alice);
    const status = async () =>
      (await resume(s, { positions: { [id]: 0 } }, id))
        .filter((f) => f.type === "event")
        .map((f) => [f.seq, f.message.status]);
    expect(await status()).toEqual([
      [m1.seq, "read"],
      [m2.seq, "sent"],
      [m3.seq, "sent"],
    ]);
    // Bob fetches the rest (a delivery), then reads the second: the same versions replay with the new status.
    await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    await read(bob, id, m2.seq);
    expect(await status()).toEqual([
      [m1.seq, "read"],
      [m2.seq, "read"],
      [m3.seq, "delivered"],
    ]);
  });

  it("in a channel say a message read only when every member has read it", async () => {
    const [owner, reader, other] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const created = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [reader.id, other.id] },
    });
    const id = created.body.id as string;
    const m = await post(owner, id, "news");
    await read(reader, id, m.seq);
    const s = await socket(reader);
    const status = async () =>
      (await resume(s, { positions: { [id]: 0 } }, id)).find((f) => f.type === "event" && f.seq === m.seq)
        ?.message.status;
    expect(await status()).toBe("sent");
    await read(other, id, m.seq);
    expect(await status()).toBe("read");
  });
});

describe("what a resume's receipts cost", () => {
  /** Counts the calls of some of the store's conversation reads while `run` runs. */
  async function counting(names: (keyof ConversationsRepo)[], run: () => Promise<void>) {
    const repo = h.deps.store.conversations as unknown as Record<string, (...args: unknown[]) => unknown>;
    const saved = Object.fromEntries(names.map((n) => [n, repo[n]]));
    const calls: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    for (const name of names) {
      const original = saved[name] as (...args: unknown[]) => unknown;
      repo[name] = (...args: unknown[]) => {
        calls[name] = (calls[name] ?? 0) + 1;
        return original.apply(h.deps.store.conversations, args);
      };
    }
    try {
      await run();
    } finally {
      Object.assign(repo, saved);
    }
    return calls;
  }

  it("reads a group's members once for every member resuming it at one version, and not at all for one that holds it", async () => {
    const owner = await signup(h.app);
    const members = await Promise.all(Array.from({ length: 6 }, () => signup(h.app)));
    const id = await group(h.app, owner, members);
    const m = await post(owner, id, "storm");
    for (const u of members.slice(0, 3)) await read(u, id, m.seq);
    for (const u of members.slice(3))
      await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: u.token });
    const sockets = await Promise.all(members.map((u) => socket(u, "msgpackr")));
    const snapshots: Frame[] = [];
    const calls = await counting(["participants", "memberships", "positionFloor"], async () => {
      const all = await Promise.all(
        sockets.map((s) => resume(s, { positions: { [id]: 0 }, receipts: { [id]: null } }, id)),
      );
      for (const frames of all) {
        snapshots.push(frames.find((f) => f.type === "receipts") as Frame);
        // The message replays with its status: three of the six members have it, not read.
        expect(frames.find((f) => f.type === "event")?.message.status).toBe("delivered");
      }
    });
    // One membership read per resume, one read of the members for them all.
    expect(calls).toEqual({ participants: 1, memberships: 6, positionFloor: 0 });
    for (const snapshot of snapshots) expect(snapshot).toEqual(snapshots[0] as Frame);
    // At the version they hold and with nothing to replay: no read beyond the membership.
    const version = snapshots[0]?.version as number;
    const quiet = await counting(["participants", "memberships", "positionFloor"], async () => {
      for (const s of sockets)
        expect(
          (await resume(s, { positions: { [id]: m.seq }, receipts: { [id]: version } }, id)).map(
            (f) => f.type,
          ),
        ).toEqual(["resumed"]);
    });
    expect(quiet).toEqual({ participants: 0, memberships: 6, positionFloor: 0 });
  });
});

describe("a resume's receipts field", () => {
  it("refuses a conversation not among the positions resumed, a version that is not one, and more than 1000", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const s = await socket(alice);
    const bad: [unknown, RegExp][] = [
      [{ positions: { [id]: 0 }, receipts: { other: null } }, /^receipts\.other: not among the positions/],
      [{ positions: { [id]: 0 }, receipts: { [id]: -1 } }, /^receipts/],
      [{ positions: { [id]: 0 }, receipts: { [id]: "7" } }, /^receipts/],
      [{ positions: { [id]: 0 }, receipts: { [id]: 1.5 } }, /^receipts/],
      [{ positions: { [id]: 0 }, receipts: [id] }, /^receipts/],
      [
        {
          positions: { [id]: 0 },
          receipts: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`c${i}`, null])),
        },
        /^receipts/,
      ],
    ];
    for (const [i, [frame, message]] of bad.entries()) {
      s.send({ type: "resume", ref: `bad${i}`, ...(frame as object) });
      const error = await s.next((f) => f.ref === `bad${i}`);
      expect(error).toMatchObject({ type: "error", code: "validation_failed" });
      expect(error.message).toMatch(message);
    }
    // None of them resumed anything; the socket is still open and answers.
    expect(s.frames.filter((f) => f.type === "resumed" || f.type === "receipts")).toEqual([]);
    const frames = await resume(s, { positions: { [id]: 0 }, receipts: { [id]: null } }, id);
    expect(frames.map((f) => f.type)).toEqual(["receipts", "resumed"]);
  });

  it("answers a conversation the user is not in with the resume's not_found, and no receipts of it", async () => {
    const [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const theirs = await group(h.app, bob, [carol]);
    const mine = await group(h.app, alice, [bob]);
    const s = await socket(alice);
    const frames = await resume(
      s,
      { positions: { [theirs]: 0, [mine]: 0 }, receipts: { [theirs]: null, [mine]: null } },
      mine,
    );
    expect(frames.map((f) => [f.type, f.conversation_id ?? f.conversation_ids])).toEqual([
      ["error", [theirs]],
      ["receipts", mine],
      ["resumed", mine],
    ]);
  });
});
