import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { ConversationEvent } from "../../../src/realtime/hub.ts";
import { call, type Harness, harness, signup } from "../../helpers.ts";

let h: Harness;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
let carol: User;
beforeAll(async () => {
  h = await harness({ MAX_MESSAGE_LENGTH: "100" });
  [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
});
afterAll(() => h.close());

async function group(owner = alice, members = [bob, carol], type = "group") {
  const res = await call(h.app, "POST", "/api/conversations", {
    token: owner.token,
    body: { conversation_type: type, participant_ids: members.map((m) => m.id) },
  });
  return res.body.id as string;
}
const send = (token: string, id: string, body: Record<string, unknown>) =>
  call(h.app, "POST", `/api/conversations/${id}/messages`, { token, body });

describe("sending", () => {
  it("stores a message with the next seq and publishes message.created", async () => {
    const id = await group();
    const events: ConversationEvent[] = [];
    const off = h.deps.hub.subscribe(id, (e) => events.push(e));
    const first = await send(alice.token, id, { content: "hello" });
    const second = await send(bob.token, id, { content: "hi", reply_to: first.body.id });
    off();
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      seq: 1,
      version_seq: 1,
      content: "hello",
      message_type: "text",
      sender_id: alice.id,
      status: "sent",
      deleted: false,
    });
    expect(second.body).toMatchObject({ seq: 2, reply_to: first.body.id });
    expect(events.map((e) => [e.kind, e.seq])).toEqual([
      ["message.created", 1],
      ["message.created", 2],
    ]);
  });

  it("is idempotent by client_msg_id: 200 and the same message, nothing stored twice", async () => {
    const id = await group();
    const a = await send(alice.token, id, { content: "once", client_msg_id: "c-1" });
    const b = await send(alice.token, id, { content: "once", client_msg_id: "c-1" });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    const other = await send(bob.token, id, { content: "mine", client_msg_id: "c-1" });
    expect(other.status).toBe(201);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    expect(page.body.items.map((m: { seq: number }) => m.seq)).toEqual([1, 2]);
  });

  it("answers a client_msg_id sent again with other content with the message stored first, unchanged (200)", async () => {
    const id = await group();
    const first = await send(alice.token, id, { content: "first words", client_msg_id: "c-edit" });
    const again = await send(alice.token, id, {
      content: "second thoughts",
      client_msg_id: "c-edit",
      attachments: [{ file_id: "f1", file_name: "a.png", file_size: 3, mime_type: "image/png" }],
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(page.body.items.map((m: { content: string }) => m.content)).toEqual(["first words"]);
    // Nor after the first was deleted: the tombstone is the answer, nothing is stored again.
    await call(h.app, "DELETE", `/api/messages/${first.body.id}`, { token: alice.token });
    const late = await send(alice.token, id, { content: "first words", client_msg_id: "c-edit" });
    expect([late.status, late.body.id, late.body.deleted]).toEqual([200, first.body.id, true]);
    const events = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: bob.token });
    expect(events.body.last_seq).toBe(2);
  });

  it("gives concurrent senders gap-free, duplicate-free seqs", async () => {
    const id = await group();
    const senders = [alice, bob, carol];
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        send((senders[i % 3] as User).token, id, { content: `m${i}`, client_msg_id: `k${i}` }),
      ),
    );
    const seqs = results.map((r) => r.body.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  });

  it.each([
    [{ content: "" }, "empty"],
    [{ content: "   " }, "blank"],
    [{ content: "x".repeat(101) }, "over MAX_MESSAGE_LENGTH"],
    [{ content: "a\u0000b" }, "a NUL byte"],
    [{ content: "\ud800" }, "a lone surrogate (not UTF-8)"],
    [{ content: "hi", reply_to: "00000000000000000000" }, "a reply to nothing"],
    [{ content: "hi", message_type: "system" }, "a system type"],
  ])("refuses %p (%s) with 422", async (body) => {
    const id = await group();
    const res = await send(alice.token, id, body);
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
  });

  it("counts the limit in bytes: 100 bytes of multi-byte text pass, 101 fail", async () => {
    const id = await group();
    expect((await send(alice.token, id, { content: "é".repeat(50) })).status).toBe(201);
    expect((await send(alice.token, id, { content: `${"é".repeat(50)}x` })).status).toBe(422);
  });

  it("refuses invalid UTF-8 bytes in the body with 422", async () => {
    const id = await group();
    const body = new Uint8Array([
      ...new TextEncoder().encode('{"content":"'),
      0xff,
      0xfe,
      ...new TextEncoder().encode('"}'),
    ]);
    const res = await h.app.handle(
      new Request(`http://localhost/api/conversations/${id}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" },
        body,
      }),
    );
    expect(res.status).toBe(422);
  });

  it("rejects a reply_to from another conversation", async () => {
    const one = await group();
    const two = await group();
    const m = await send(alice.token, one, { content: "there" });
    expect((await send(alice.token, two, { content: "re", reply_to: m.body.id })).status).toBe(422);
  });

  it("answers a channel post sent again after its sender was demoted with the stored post (200), not 403", async () => {
    const id = await group(alice, [bob], "channel");
    const role = (r: string) =>
      call(h.app, "PUT", `/api/conversations/${id}/participants/${bob.id}`, {
        token: alice.token,
        body: { role: r },
      });
    await role("admin");
    const posted = await send(bob.token, id, { content: "news", client_msg_id: "p-1" });
    expect(posted.status).toBe(201);
    await role("member");
    // Its answer was lost and the client sends it again: it was stored, and the resend says so.
    const again = await send(bob.token, id, { content: "news", client_msg_id: "p-1" });
    expect([again.status, again.body.id]).toEqual([200, posted.body.id]);
    // A new one is still refused, and nothing more is stored.
    const other = await send(bob.token, id, { content: "more news", client_msg_id: "p-2" });
    expect([other.status, other.body.error?.code]).toEqual([403, "forbidden"]);
    const page = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: alice.token });
    expect(page.body.items.filter((m: { message_type: string }) => m.message_type !== "system")).toHaveLength(
      1,
    );
  });

  it("lets only owners and admins post in a channel: 403 forbidden for members", async () => {
    const id = await group(alice, [bob], "channel");
    expect((await send(alice.token, id, { content: "news" })).status).toBe(201);
    const res = await send(bob.token, id, { content: "me too" });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
  });
});

describe("history", () => {
  it("pages ascending by seq with exclusive before/after bounds and has_more", async () => {
    const id = await group();
    for (let i = 1; i <= 7; i++) await send(alice.token, id, { content: `m${i}` });
    const get = async (q: string) =>
      (await call(h.app, "GET", `/api/conversations/${id}/messages?${q}`, { token: bob.token })).body;
    const seqs = (b: { items: { seq: number }[] }) => b.items.map((m) => m.seq);
    const latest = await get("limit=3");
    expect(seqs(latest)).toEqual([5, 6, 7]);
    expect(latest.has_more).toBe(true);
    expect(seqs(await get("before=5&limit=3"))).toEqual([2, 3, 4]);
    const oldest = await get("before=3&limit=3");
    expect(seqs(oldest)).toEqual([1, 2]);
    expect(oldest.has_more).toBe(false);
    const after = await get("after=2&limit=3");
    expect(seqs(after)).toEqual([3, 4, 5]);
    expect(after.has_more).toBe(true);
    expect(seqs(await get("after=2&before=5"))).toEqual([3, 4]);
    const window = await get("after=1&before=7&limit=2");
    expect(seqs(window)).toEqual([2, 3]);
    expect(window.has_more).toBe(true);
  });

  it("refuses a limit over 200 or a negative bound with 422", async () => {
    const id = await group();
    for (const q of ["limit=201", "limit=0", "before=-1", "after=x"]) {
      const res = await call(h.app, "GET", `/api/conversations/${id}/messages?${q}`, { token: bob.token });
      expect({ q, status: res.status }).toEqual({ q, status: 422 });
    }
  });
});

describe("history and catch-up at their edges", () => {
  it("answers the ends of the log: nothing before the first message, nothing after the last, has_more false", async () => {
    const id = await group();
    for (let i = 1; i <= 3; i++) await send(alice.token, id, { content: `m${i}` });
    const get = async (route: string, q: string) =>
      (await call(h.app, "GET", `/api/conversations/${id}/${route}?${q}`, { token: bob.token })).body;
    expect(await get("messages", "before=1")).toEqual({ items: [], has_more: false });
    expect(await get("messages", "after=3")).toEqual({ items: [], has_more: false });
    expect(await get("messages", "after=3000000000")).toEqual({ items: [], has_more: false });
    expect(await get("messages", "after=2&before=3")).toEqual({ items: [], has_more: false });
    const exact = await get("messages", "limit=3");
    expect([exact.items.length, exact.has_more]).toEqual([3, false]);
    expect(await get("events", "after=3")).toEqual({ items: [], last_seq: 3, has_more: false });
    expect(await get("events", "after=3000000000")).toEqual({ items: [], last_seq: 3, has_more: false });
    const all = await get("events", "after=0&limit=3");
    expect([all.items.length, all.has_more]).toEqual([3, false]);
  });

  it("answers the latest 50 messages and the first 200 events when no limit is given", async () => {
    const id = await group();
    for (let i = 1; i <= 201; i++) await send(alice.token, id, { content: `m${i}` });
    const get = async (route: string) =>
      (await call(h.app, "GET", `/api/conversations/${id}/${route}`, { token: bob.token })).body;
    const history = await get("messages");
    expect([history.items[0].seq, history.items.length, history.has_more]).toEqual([152, 50, true]);
    const events = await get("events?after=0");
    expect([events.items[0].seq, events.items.length, events.has_more]).toEqual([1, 200, true]);
    const most = await get("messages?limit=200");
    expect([most.items[0].seq, most.items.length, most.has_more]).toEqual([2, 200, true]);
  });

  it("pages the events one at a time through every change once, in order, the last page saying has_more false", async () => {
    const id = await group();
    const m1 = await send(alice.token, id, { content: "one" });
    const m2 = await send(bob.token, id, { content: "two" });
    await call(h.app, "PUT", `/api/messages/${m1.body.id}`, { token: alice.token, body: { content: "1" } });
    await call(h.app, "POST", `/api/messages/${m2.body.id}/reactions`, {
      token: carol.token,
      body: { emoji: "👍" },
    });
    await send(carol.token, id, { content: "three" });
    await call(h.app, "DELETE", `/api/messages/${m2.body.id}`, { token: bob.token });
    const seen: [string, number][] = [];
    let after = 0;
    for (let pages = 0; pages < 10; pages++) {
      const res = await call(h.app, "GET", `/api/conversations/${id}/events?after=${after}&limit=1`, {
        token: carol.token,
      });
      expect(res.status).toBe(200);
      for (const m of res.body.items) seen.push([m.content, m.version_seq]);
      after = res.body.items.at(-1)?.version_seq ?? after;
      if (!res.body.has_more) break;
    }
    // m1 edited at 3, m3 sent at 5, m2 deleted at 6 (its reaction at 4 is behind its delete).
    expect(seen).toEqual([
      ["1", 3],
      ["three", 5],
      ["", 6],
    ]);
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=ten", "limit"],
    ["limit=1.5", "limit"],
    ["after=-1", "after"],
    ["after=1.5", "after"],
    ["after=one", "after"],
    ["after=", "after"],
  ])("refuses the events query %p with 422 naming %p", async (q, field) => {
    const id = await group();
    const res = await call(h.app, "GET", `/api/conversations/${id}/events?${q}`, { token: bob.token });
    expect([res.status, res.body.error?.code, res.body.error?.field]).toEqual([
      422,
      "validation_failed",
      field,
    ]);
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=201", "limit"],
    ["limit=ten", "limit"],
    ["before=1.5", "before"],
    ["before=-1", "before"],
    ["after=one", "after"],
  ])("refuses the history query %p with 422 naming %p", async (q, field) => {
    const id = await group();
    const res = await call(h.app, "GET", `/api/conversations/${id}/messages?${q}`, { token: bob.token });
    expect([res.status, res.body.error?.code, res.body.error?.field]).toEqual([
      422,
      "validation_failed",
      field,
    ]);
  });
});

describe("edits, deletes and reactions", () => {
  it("edits (sender only), stamping edited_at and a new version_seq", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "draft" });
    const other = await call(h.app, "PUT", `/api/messages/${m.body.id}`, {
      token: bob.token,
      body: { content: "hack" },
    });
    expect(other.status).toBe(403);
    const res = await call(h.app, "PUT", `/api/messages/${m.body.id}`, {
      token: alice.token,
      body: { content: "final" },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ content: "final", seq: 1, version_seq: 2 });
    expect(res.body.edited_at).not.toBeNull();
    expect(
      (await call(h.app, "PUT", `/api/messages/${m.body.id}`, { token: alice.token, body: { content: "" } }))
        .status,
    ).toBe(422);
  });

  it("lets a channel's posts be edited only by a sender still its owner or admin: a demoted admin's stay (403)", async () => {
    const id = await group(alice, [bob, carol], "channel");
    const role = (user: User, r: string) =>
      call(h.app, "PUT", `/api/conversations/${id}/participants/${user.id}`, {
        token: alice.token,
        body: { role: r },
      });
    expect((await role(bob, "admin")).status).toBe(200);
    const post = await send(bob.token, id, { content: "the news" });
    expect(post.status).toBe(201);
    const edit = (content: string) =>
      call(h.app, "PUT", `/api/messages/${post.body.id}`, { token: bob.token, body: { content } });
    expect((await edit("the news, corrected")).status).toBe(200);
    expect((await role(bob, "member")).status).toBe(200);
    // A reader may not post, so may not put new words before every reader under an old post either.
    const refused = await edit("something else entirely");
    expect([refused.status, refused.body.error?.code]).toEqual([403, "forbidden"]);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: carol.token });
    expect(page.body.items.find((m: { id: string }) => m.id === post.body.id).content).toBe(
      "the news, corrected",
    );
    // Taking it back stays theirs.
    expect((await call(h.app, "DELETE", `/api/messages/${post.body.id}`, { token: bob.token })).status).toBe(
      204,
    );
  });

  it("deletes as a tombstone (sender or owner/admin), and a deleted message cannot be edited: 409", async () => {
    const id = await group();
    const m = await send(bob.token, id, {
      content: "oops",
      attachments: [{ file_id: "f1", file_name: "a.png", file_size: 3, mime_type: "image/png" }],
    });
    expect((await call(h.app, "DELETE", `/api/messages/${m.body.id}`, { token: carol.token })).status).toBe(
      403,
    );
    expect((await call(h.app, "DELETE", `/api/messages/${m.body.id}`, { token: alice.token })).status).toBe(
      204,
    );
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(page.body.items[0]).toMatchObject({
      id: m.body.id,
      deleted: true,
      content: "",
      attachments: [],
      version_seq: 2,
    });
    const edit = await call(h.app, "PUT", `/api/messages/${m.body.id}`, {
      token: bob.token,
      body: { content: "again" },
    });
    expect(edit.status).toBe(409);
    expect(edit.body.error.code).toBe("message_deleted");
  });

  it("lets only the sender delete a message in a dm, whichever of the two opened it (403 to the other)", async () => {
    const opened = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const id = opened.body.id as string;
    const bobs = await send(bob.token, id, { content: "bob's words" });
    const alices = await send(alice.token, id, { content: "alice's words" });
    for (const [token, message] of [
      [alice.token, bobs],
      [bob.token, alices],
    ] as const) {
      const res = await call(h.app, "DELETE", `/api/messages/${message.body.id}`, { token });
      expect([res.status, res.body?.error?.code]).toEqual([403, "forbidden"]);
    }
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(page.body.items.map((m: { content: string; deleted: boolean }) => [m.content, m.deleted])).toEqual(
      [
        ["bob's words", false],
        ["alice's words", false],
      ],
    );
    expect((await call(h.app, "DELETE", `/api/messages/${bobs.body.id}`, { token: bob.token })).status).toBe(
      204,
    );
  });

  it("keeps system messages as they were: neither edited nor deleted, even by the owner (403)", async () => {
    const id = await group(alice, [bob]);
    const added = await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    expect(added.status).toBe(201);
    const history = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    const record = history.body.items.find((m: { message_type: string }) => m.message_type === "system");
    const path = `/api/messages/${record.id}`;
    const edit = await call(h.app, "PUT", path, { token: alice.token, body: { content: "rewritten" } });
    expect([edit.status, edit.body.error.code]).toEqual([403, "forbidden"]);
    const del = await call(h.app, "DELETE", path, { token: alice.token });
    expect([del.status, del.body.error.code]).toEqual([403, "forbidden"]);
    const after = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    expect(after.body.items.find((m: { id: string }) => m.id === record.id)).toEqual(record);
  });

  it("adds a reaction once (201, then 200) and removes it by URL-encoded emoji (204)", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "react to me" });
    const events: ConversationEvent[] = [];
    const off = h.deps.hub.subscribe(id, (e) => events.push(e));
    const add = () =>
      call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
        token: bob.token,
        body: { emoji: "👍🏽" },
      });
    expect((await add()).status).toBe(201);
    expect((await add()).status).toBe(200);
    const del = await call(
      h.app,
      "DELETE",
      `/api/messages/${m.body.id}/reactions/${encodeURIComponent("👍🏽")}`,
      { token: bob.token },
    );
    expect(del.status).toBe(204);
    off();
    expect(events.map((e) => e.kind)).toEqual(["reaction.added", "reaction.removed"]);
    expect(events.map((e) => e.seq)).toEqual([2, 3]);
  });

  it("removes the reaction its path names, decoded once: %41 is not A", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "percent" });
    for (const emoji of ["A", "%41"]) {
      const added = await call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
        token: bob.token,
        body: { emoji },
      });
      expect(added.status).toBe(201);
    }
    const del = await call(
      h.app,
      "DELETE",
      `/api/messages/${m.body.id}/reactions/${encodeURIComponent("%41")}`,
      { token: bob.token },
    );
    expect(del.status).toBe(204);
    const history = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    const kept = history.body.items.find((x: { id: string }) => x.id === m.body.id);
    expect(kept.reactions.map((r: { emoji: string }) => r.emoji)).toEqual(["A"]);
  });

  it("counts every reaction when many people react at the same moment", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "popular" });
    const people = [alice, bob, carol];
    await Promise.all(
      people.map((u) =>
        call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
          token: u.token,
          body: { emoji: "🔥" },
        }),
      ),
    );
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    expect(page.body.items[0].reactions.map((r: { user_id: string }) => r.user_id).sort()).toEqual(
      people.map((u) => u.id).sort(),
    );
  });

  it("does not bring a deleted message back with a late edit or reaction", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "soon gone" });
    await call(h.app, "DELETE", `/api/messages/${m.body.id}`, { token: alice.token });
    const react = await call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
      token: bob.token,
      body: { emoji: "👀" },
    });
    expect(react.status).toBe(409);
    expect(react.body.error.code).toBe("message_deleted");
    // Taking a reaction off a deleted message leaves what was asked for (none there): 204, as for any
    // reaction not there, and nothing is written.
    const unreact = await call(
      h.app,
      "DELETE",
      `/api/messages/${m.body.id}/reactions/${encodeURIComponent("👀")}`,
      {
        token: bob.token,
      },
    );
    expect(unreact.status).toBe(204);
    expect((await call(h.app, "DELETE", `/api/messages/${m.body.id}`, { token: alice.token })).status).toBe(
      204,
    );
    const events = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: bob.token });
    expect(events.body.last_seq).toBe(2); // the second delete took no seq
  });

  it.each([["."], [".."]])(
    "refuses the emoji %p, which no URL can name for its removal (a dot segment)",
    async (emoji) => {
      const id = await group();
      const m = await send(alice.token, id, { content: "mine" });
      const add = await call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
        token: alice.token,
        body: { emoji },
      });
      expect([add.status, add.body.error?.field]).toEqual([422, "emoji"]);
      // Were it taken, the URL of its removal would lose it: ".." would make it DELETE /api/messages/{id}.
      const path = `/api/messages/${m.body.id}/reactions/${encodeURIComponent(emoji)}`;
      expect(new URL(path, "http://localhost").pathname).toBe(
        emoji === "." ? `/api/messages/${m.body.id}/reactions/` : `/api/messages/${m.body.id}/`,
      );
      const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
      expect(page.body.items[0].reactions).toEqual([]);
    },
  );

  it("takes an emoji of one grapheme past 32 bytes (a kiss with two skin tones is 35) and removes it", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "xoxo" });
    for (const emoji of ["🧑🏻‍❤️‍💋‍🧑🏼", "👩🏽‍❤️‍💋‍👨🏿"]) {
      const add = await call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
        token: bob.token,
        body: { emoji },
      });
      expect(add.status).toBe(201);
    }
    const del = await call(
      h.app,
      "DELETE",
      `/api/messages/${m.body.id}/reactions/${encodeURIComponent("🧑🏻‍❤️‍💋‍🧑🏼")}`,
      { token: bob.token },
    );
    expect(del.status).toBe(204);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(page.body.items.at(-1).reactions).toEqual([{ user_id: bob.id, emoji: "👩🏽‍❤️‍💋‍👨🏿" }]);
  });

  it("still refuses a token of several graphemes past 32 bytes, whatever they are", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "many" });
    const res = await call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
      token: bob.token,
      body: { emoji: "👍".repeat(9) },
    });
    expect([res.status, res.body.error.field]).toEqual([422, "emoji"]);
  });

  it.each([[""], ["two words"], ["x".repeat(33)]])("refuses the emoji %p with 422", async (emoji) => {
    const id = await group();
    const m = await send(alice.token, id, { content: "hi" });
    const res = await call(h.app, "POST", `/api/messages/${m.body.id}/reactions`, {
      token: bob.token,
      body: { emoji },
    });
    expect(res.status).toBe(422);
  });
});

describe("catch-up events", () => {
  it("answers every change after a position, in version_seq order, tombstones included", async () => {
    const id = await group();
    const m1 = await send(alice.token, id, { content: "one" });
    const m2 = await send(alice.token, id, { content: "two" });
    const m3 = await send(bob.token, id, { content: "three" });
    // Position: bob saw up to seq 3. Then: edit m1, delete m2, react to m3, a new m4.
    await call(h.app, "PUT", `/api/messages/${m1.body.id}`, {
      token: alice.token,
      body: { content: "one!" },
    });
    await call(h.app, "DELETE", `/api/messages/${m2.body.id}`, { token: alice.token });
    await call(h.app, "POST", `/api/messages/${m3.body.id}/reactions`, {
      token: alice.token,
      body: { emoji: "🎉" },
    });
    const m4 = await send(carol.token, id, { content: "four" });
    const res = await call(h.app, "GET", `/api/conversations/${id}/events?after=3`, { token: bob.token });
    expect(res.status).toBe(200);
    expect(res.body.last_seq).toBe(7);
    expect(res.body.has_more).toBe(false);
    expect(res.body.items.map((m: { id: string; version_seq: number }) => [m.id, m.version_seq])).toEqual([
      [m1.body.id, 4],
      [m2.body.id, 5],
      [m3.body.id, 6],
      [m4.body.id, 7],
    ]);
    expect(res.body.items[0].content).toBe("one!");
    expect(res.body.items[1].deleted).toBe(true);
    expect(res.body.items[2].reactions).toEqual([{ user_id: alice.id, emoji: "🎉" }]);
    const paged = await call(h.app, "GET", `/api/conversations/${id}/events?after=3&limit=2`, {
      token: bob.token,
    });
    expect(paged.body.items).toHaveLength(2);
    expect(paged.body.has_more).toBe(true);
  });
});

describe("read state and receipts", () => {
  it("moves last_read_seq forward only, and never past the log", async () => {
    const id = await group();
    for (let i = 0; i < 3; i++) await send(alice.token, id, { content: `m${i}` });
    const read = (seq: number) =>
      call(h.app, "POST", `/api/conversations/${id}/read`, { token: bob.token, body: { seq } });
    expect((await read(2)).body).toEqual({ last_read_seq: 2 });
    expect((await read(1)).body).toEqual({ last_read_seq: 2 });
    expect((await read(99)).body).toEqual({ last_read_seq: 3 });
    expect((await read(-1)).status).toBe(422);
  });

  it("reports sent, then delivered once every other member fetched it, then read", async () => {
    const id = await group();
    const m = await send(alice.token, id, { content: "status?" });
    const status = async () =>
      (await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token })).body.items[0]
        .status;
    expect(m.body.status).toBe("sent");
    await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(await status()).toBe("sent");
    await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: carol.token });
    expect(await status()).toBe("delivered");
    await call(h.app, "POST", `/api/conversations/${id}/read`, { token: bob.token, body: { seq: 1 } });
    await call(h.app, "POST", `/api/conversations/${id}/read`, { token: carol.token, body: { seq: 1 } });
    expect(await status()).toBe("read");
    const receipts = await call(h.app, "GET", `/api/messages/${m.body.id}/receipts`, { token: alice.token });
    expect(receipts.status).toBe(200);
    expect(receipts.body.items).toHaveLength(2);
    for (const r of receipts.body.items) {
      expect(r.delivered_at).not.toBeNull();
      expect(r.read_at).not.toBeNull();
    }
  });
});

describe("search", () => {
  it("finds live messages by words, best match first, ignoring deleted ones", async () => {
    const id = await group();
    await send(alice.token, id, { content: "the quarterly budget review" });
    await send(bob.token, id, { content: "lunch?" });
    const gone = await send(bob.token, id, { content: "budget leak" });
    await send(carol.token, id, { content: "budget budget budget review" });
    await call(h.app, "DELETE", `/api/messages/${gone.body.id}`, { token: bob.token });
    const res = await call(
      h.app,
      "GET",
      `/api/conversations/${id}/messages/search?q=${encodeURIComponent("Budget review")}`,
      { token: carol.token },
    );
    expect(res.status).toBe(200);
    expect(res.body.items.map((m: { content: string }) => m.content).sort()).toEqual(
      ["budget budget budget review", "the quarterly budget review"].sort(),
    );
    const odd = await call(
      h.app,
      "GET",
      `/api/conversations/${id}/messages/search?q=${encodeURIComponent('"budget AND (')}`,
      { token: carol.token },
    );
    expect(odd.status).toBe(200);
  });

  it("finds what people wrote, not the system records of membership and name changes", async () => {
    const id = await group(alice, [bob]);
    await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    await call(h.app, "PUT", `/api/conversations/${id}`, { token: alice.token, body: { name: "Budget" } });
    const said = await send(bob.token, id, { content: "welcome, new member" });
    const search = (q: string) =>
      call(h.app, "GET", `/api/conversations/${id}/messages/search?q=${encodeURIComponent(q)}`, {
        token: carol.token,
      });
    expect((await search("member")).body.items.map((m: { id: string }) => m.id)).toEqual([said.body.id]);
    expect((await search("event")).body.items).toEqual([]);
    expect((await search("budget")).body.items).toEqual([]);
  });

  it("takes a q of up to 200 characters, of which the first 16 words count; a longer q is refused (422 naming q)", async () => {
    const id = await group();
    const words = Array.from({ length: 16 }, (_, i) => `word${i}`);
    const sent = await send(alice.token, id, { content: words.join(" ") });
    const search = (q: string) =>
      call(h.app, "GET", `/api/conversations/${id}/messages/search?q=${encodeURIComponent(q)}`, {
        token: alice.token,
      });
    // A 17th word the message lacks is ignored.
    const long = `${words.join(" ")} absent`.padEnd(200, " ");
    expect(long).toHaveLength(200);
    const found = await search(long);
    expect(found.status).toBe(200);
    expect(found.body.items.map((m: { id: string }) => m.id)).toEqual([sent.body.id]);
    const over = await search(`${long}x`);
    expect(over.status).toBe(422);
    expect(over.body.error).toMatchObject({ code: "validation_failed", field: "q" });
    // Only punctuation or symbols: no word to look for, nothing found.
    expect((await search('"*" AND (🎉)')).body.items).toEqual([]);
  });

  it("finds words inside Chinese, Japanese and Thai sentences; a run of their characters is one of q's 16 words", async () => {
    const id = await group();
    const ja = await send(alice.token, id, { content: "明日は東京に行きます" });
    const th = await send(bob.token, id, { content: "สวัสดีครับ" });
    const words = Array.from({ length: 16 }, (_, i) => `word${i}`);
    const both = await send(alice.token, id, { content: `${words.join(" ")} 東京タワー` });
    const search = async (q: string) => {
      const res = await call(
        h.app,
        "GET",
        `/api/conversations/${id}/messages/search?q=${encodeURIComponent(q)}`,
        {
          token: carol.token,
        },
      );
      expect(res.status).toBe(200);
      return res.body.items.map((m: { id: string }) => m.id).sort();
    };
    expect(await search("東京")).toEqual([ja.body.id, both.body.id].sort());
    expect(await search("行きます")).toEqual([ja.body.id]);
    expect(await search("สวัสดี")).toEqual([th.body.id]);
    expect(await search("京東")).toEqual([]);
    // The content comes back as it was sent.
    const found = await call(
      h.app,
      "GET",
      `/api/conversations/${id}/messages/search?q=${encodeURIComponent("東京")}`,
      {
        token: carol.token,
      },
    );
    expect(found.body.items.map((m: { content: string }) => m.content)).toContain("明日は東京に行きます");
    // 東京タワー is one word: as the 17th it is ignored, as the first it counts.
    expect(await search(`${words.join(" ")} 大阪`)).toEqual([both.body.id]);
    expect(await search(`大阪 ${words.join(" ")}`)).toEqual([]);
    expect(await search(`東京タワー ${words.join(" ")}`)).toEqual([both.body.id]);
  });

  it("refuses to search an encrypted conversation: 422 conversation_encrypted", async () => {
    const res = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "group", participant_ids: [bob.id], encrypted: true },
    });
    const search = await call(h.app, "GET", `/api/conversations/${res.body.id}/messages/search?q=x`, {
      token: alice.token,
    });
    expect(search.status).toBe(422);
    expect(search.body.error.code).toBe("conversation_encrypted");
  });
});
