import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Packr } from "msgpackr";
import { RECEIPT_WINDOW_MS } from "../../src/modules/messages/receipt-batch.ts";
import { RESUME_READ_AHEAD } from "../../src/realtime/dispatch.ts";
import { bunTopic, topics } from "../../src/realtime/fanout.ts";
import { type Encoding, SUBPROTOCOLS } from "../../src/realtime/frames.ts";
import { call, group, type Harness, harness, signup, waitFor } from "../helpers.ts";
import { connect, type Frame, recordsPackr, type TestSocket, upgradeStatus } from "./ws-client.ts";

let h: Harness;
let base: string;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
let carol: User;
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness({ WS_MAX_PAYLOAD: "4096", RESUME_MAX: "5", WS_MAX_CONNECTIONS_PER_USER: "3" });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
  [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

const url = (u: User) => `${base}/ws/${u.id}/${u.session_id}`;
async function socket(u: User, encoding: Encoding = "msgpack"): Promise<TestSocket> {
  const s = await connect(url(u), [SUBPROTOCOLS[encoding], `bearer.${u.token}`]);
  open.push(s);
  await s.next((f) => f.type === "hello");
  return s;
}
const event = (kind: string, conversation: string) => (f: Frame) =>
  f.type === "event" && f.kind === kind && f.conversation_id === conversation;

describe("connecting", () => {
  it("refuses an upgrade without a valid token for that user and session with 401", async () => {
    expect(await upgradeStatus(url(alice))).toBe(401);
    expect(await upgradeStatus(url(alice), { authorization: "Bearer nope" })).toBe(401);
    expect(
      await upgradeStatus(`${base}/ws/${bob.id}/${alice.session_id}`, {
        authorization: `Bearer ${alice.token}`,
      }),
    ).toBe(401);
    expect(
      await upgradeStatus(`${base}/ws/${alice.id}/${bob.session_id}`, {
        authorization: `Bearer ${alice.token}`,
      }),
    ).toBe(401);
  });

  it("accepts the token as Authorization header, bearer subprotocol or access_token query", async () => {
    const viaHeader = await connect(url(alice), ["parley.json"], { authorization: `Bearer ${alice.token}` });
    open.push(viaHeader);
    expect((await viaHeader.next((f) => f.type === "hello")).user_id).toBe(alice.id);
    const viaQuery = await connect(`${url(alice)}?access_token=${alice.token}`, ["parley.json"]);
    open.push(viaQuery);
    await viaQuery.next((f) => f.type === "hello");
    viaHeader.close();
    viaQuery.close();
    await Promise.all([viaHeader.closed, viaQuery.closed]);
    expect(h.logs.join("").includes(alice.token)).toBe(false);
  });

  it("says hello with the session, heartbeat, largest frame and frame rate, and answers ping with pong echoing ref, in every encoding", async () => {
    for (const encoding of ["msgpack", "msgpackr", "json"] as const) {
      const s = await socket(alice, encoding);
      expect(s.ws.protocol).toBe(SUBPROTOCOLS[encoding]);
      const hello = s.frames[0] as Frame;
      expect(hello).toMatchObject({
        type: "hello",
        user_id: alice.id,
        session_id: alice.session_id,
        heartbeat_interval: 30,
        max_payload: 4096,
        rate_per_second: 20,
        rate_burst: 40,
      });
      s.send({ type: "ping", ref: 7 });
      const pong = await s.next((f) => f.type === "pong");
      expect(pong.ref).toBe(7);
      expect(typeof pong.server_time).toBe("string");
      s.close();
      await s.closed;
    }
  });

  it("caps connections per user: the next upgrade gets 429", async () => {
    const dave = await signup(h.app);
    const sockets = [await socket(dave), await socket(dave), await socket(dave)];
    expect(await upgradeStatus(url(dave), { authorization: `Bearer ${dave.token}` })).toBe(429);
    for (const s of sockets) s.close();
  });
});

describe("messages over the socket", () => {
  it("acks the sender once durable and delivers the event to every member's sockets, msgpack and JSON alike", async () => {
    const id = await group(h.app, alice, [bob]);
    const a1 = await socket(alice);
    const a2 = await socket(alice, "json");
    const b = await socket(bob, "json");
    a1.send({
      type: "message",
      ref: "r1",
      conversation_id: id,
      client_msg_id: "cm-1",
      content: "hello over ws",
    });
    const ack = await a1.next((f) => f.type === "ack");
    expect(ack).toMatchObject({ ref: "r1", client_msg_id: "cm-1", seq: 1 });
    for (const s of [b, a2]) {
      const ev = await s.next(event("message.created", id));
      expect(ev.seq).toBe(1);
      expect(ev.message).toMatchObject({ id: ack.message_id, content: "hello over ws", sender_id: alice.id });
    }
    // Stored: REST sees it.
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(page.body.items[0].id).toBe(ack.message_id);
    for (const s of [a1, a2, b]) s.close();
  });

  it("delivers to a JSON socket that comes after every JSON socket of the node has gone", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice);
    for (const round of [1, 2]) {
      const bj = await socket(bob, "json");
      a.send({
        type: "message",
        conversation_id: id,
        client_msg_id: `again-${round}`,
        content: `round ${round}`,
      });
      const ev = await bj.next(event("message.created", id));
      expect(ev.message.content).toBe(`round ${round}`);
      bj.close();
      await bj.closed;
    }
    a.close();
  });

  it("sends a new message in the short live form: defaults and the event's own fields left out", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice);
    const bm = await socket(bob);
    const bj = await socket(bob, "json");
    a.send({ type: "message", conversation_id: id, client_msg_id: "short-1", content: "plain" });
    const ack = await a.next((f) => f.type === "ack");
    for (const s of [bm, bj]) {
      const ev = await s.next(event("message.created", id));
      expect(ev.seq).toBe(ack.seq);
      const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
      const stored = page.body.items.find((m: { id: string }) => m.id === ack.message_id);
      expect(ev.message).toEqual({
        id: stored.id,
        sender_id: alice.id,
        content: "plain",
        client_msg_id: "short-1",
        created_at: stored.created_at,
      });
    }
    // Fields that differ from a new message's defaults travel.
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: {
        content: "see above",
        message_type: "file",
        reply_to: ack.message_id,
        attachments: [{ file_id: "f1", file_name: "a.pdf", file_size: 3, mime_type: "application/pdf" }],
      },
    });
    const ev = await bm.next((f) => event("message.created", id)(f) && f.seq === sent.body.seq);
    expect(ev.message).toEqual({
      id: sent.body.id,
      sender_id: alice.id,
      content: "see above",
      created_at: sent.body.created_at,
      message_type: "file",
      reply_to: ack.message_id,
      attachments: [{ file_id: "f1", file_name: "a.pdf", file_size: 3, mime_type: "application/pdf" }],
    });
    for (const s of [a, bm, bj]) s.close();
  });

  it("acks a retried client_msg_id again and stores it once", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice);
    a.send({ type: "message", ref: 1, conversation_id: id, client_msg_id: "dup", content: "once" });
    a.send({ type: "message", ref: 2, conversation_id: id, client_msg_id: "dup", content: "once" });
    const [first, second] = [
      await a.next((f) => f.type === "ack" && f.ref === 1),
      await a.next((f) => f.type === "ack" && f.ref === 2),
    ];
    expect(second.message_id).toBe(first.message_id);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    expect(page.body.items).toHaveLength(1);
    a.close();
  });

  it("acks a client_msg_id retried with other content with the first message, which stays as it was sent", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice, "json");
    a.send({ type: "message", ref: 1, conversation_id: id, client_msg_id: "redo", content: "first" });
    const first = await a.next((f) => f.type === "ack" && f.ref === 1);
    a.send({ type: "message", ref: 2, conversation_id: id, client_msg_id: "redo", content: "second" });
    const second = await a.next((f) => f.type === "ack" && f.ref === 2);
    expect([second.message_id, second.seq]).toEqual([first.message_id, first.seq]);
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: bob.token });
    expect(page.body.items.map((m: { content: string }) => m.content)).toEqual(["first"]);
    a.close();
  });

  it("answers an outsider's reaction, read and ack frames not_found, changing nothing", async () => {
    const id = await group(h.app, alice, [bob]);
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "members only" },
    });
    const c = await socket(carol, "json");
    for (const [ref, frame] of [
      ["r", { type: "reaction", message_id: sent.body.id, emoji: "👍", op: "add" }],
      ["rm", { type: "reaction", message_id: sent.body.id, emoji: "👍", op: "remove" }],
      ["rd", { type: "message_read", conversation_id: id, seq: 1 }],
      ["ak", { type: "message_ack", conversation_id: id, seq: 1 }],
    ] as const) {
      c.send({ ...frame, ref });
      expect(await c.next((f) => f.ref === ref)).toMatchObject({ type: "error", code: "not_found" });
    }
    const page = await call(h.app, "GET", `/api/conversations/${id}/messages`, { token: alice.token });
    expect(page.body.items[0]).toMatchObject({ reactions: [], version_seq: 1, status: "sent" });
    const receipts = await call(h.app, "GET", `/api/messages/${sent.body.id}/receipts`, {
      token: alice.token,
    });
    expect(receipts.body.items.map((r: { user_id: string }) => r.user_id)).toEqual([bob.id]);
    c.close();
  });

  it("answers a reaction frame on a deleted message message_deleted, and one with a bad emoji validation_failed", async () => {
    const id = await group(h.app, alice, [bob]);
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "soon gone" },
    });
    const b = await socket(bob);
    b.send({ type: "reaction", ref: "dots", message_id: sent.body.id, emoji: "..", op: "add" });
    expect(await b.next((f) => f.ref === "dots")).toMatchObject({ type: "error", code: "validation_failed" });
    await call(h.app, "DELETE", `/api/messages/${sent.body.id}`, { token: alice.token });
    b.send({ type: "reaction", ref: "late", message_id: sent.body.id, emoji: "👀", op: "add" });
    expect(await b.next((f) => f.ref === "late")).toMatchObject({ type: "error", code: "message_deleted" });
    const events = await call(h.app, "GET", `/api/conversations/${id}/events?after=0`, { token: bob.token });
    expect(events.body.items[0]).toMatchObject({ deleted: true, reactions: [] });
    expect(events.body.last_seq).toBe(2);
    b.close();
  });

  it("answers rule violations with error frames carrying the REST code and the ref", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice);
    a.send({ type: "message", ref: "e1", conversation_id: id, client_msg_id: "x", content: "" });
    expect(await a.next((f) => f.type === "error" && f.ref === "e1")).toMatchObject({
      code: "validation_failed",
    });
    a.send({
      type: "message",
      ref: "e2",
      conversation_id: "00000000000000000000",
      client_msg_id: "y",
      content: "hi",
    });
    expect(await a.next((f) => f.type === "error" && f.ref === "e2")).toMatchObject({ code: "not_found" });
    a.close();
    // A client id with a lone surrogate (JSON can carry one) would be stored as U+FFFD: refused.
    const j = await socket(alice, "json");
    for (const [ref, client_msg_id] of [
      ["e3", "x\ud800"],
      ["e4", "x\u0000"],
    ]) {
      j.send({ type: "message", ref, conversation_id: id, client_msg_id, content: "hi" });
      expect(await j.next((f) => f.type === "error" && f.ref === ref)).toMatchObject({
        code: "validation_failed",
        message: expect.stringMatching(/^client_msg_id: /),
      });
    }
    // The error names the field of the frame's own type, as REST does.
    j.send({ type: "message", ref: "e5", conversation_id: id, client_msg_id: "z", attachments: [{}] });
    expect(await j.next((f) => f.type === "error" && f.ref === "e5")).toMatchObject({
      code: "validation_failed",
      message: expect.stringMatching(/^attachments\.0\.file_id: /),
    });
    j.send({ type: "reaction", ref: "e6", message_id: "m", emoji: "x", op: "twice" });
    expect(await j.next((f) => f.type === "error" && f.ref === "e6")).toMatchObject({
      message: expect.stringMatching(/^op: /),
    });
    j.close();
  });

  it("echoes the ref in the error reply to a typing frame", async () => {
    const a = await socket(alice);
    a.send({ type: "typing_start", ref: "t1", conversation_id: "00000000000000000000" });
    expect(await a.next((f) => f.type === "error")).toMatchObject({ ref: "t1", code: "not_found" });
    a.send({ type: "typing_stop", ref: 2, conversation_id: "00000000000000000000" });
    expect(await a.next((f) => f.type === "error" && f.ref === 2)).toMatchObject({ code: "not_found" });
    a.close();
  });

  it("turns REST edits, deletes and reactions into live events", async () => {
    const id = await group(h.app, alice, [bob]);
    const b = await socket(bob);
    const sent = await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "v1" },
    });
    await b.next(event("message.created", id));
    await call(h.app, "PUT", `/api/messages/${sent.body.id}`, {
      token: alice.token,
      body: { content: "v2" },
    });
    expect((await b.next(event("message.edited", id))).message.content).toBe("v2");
    await call(h.app, "POST", `/api/messages/${sent.body.id}/reactions`, {
      token: alice.token,
      body: { emoji: "👍" },
    });
    await b.next(event("reaction.added", id));
    await call(h.app, "DELETE", `/api/messages/${sent.body.id}`, { token: alice.token });
    expect((await b.next(event("message.deleted", id))).message.deleted).toBe(true);
    b.close();
  });

  it("subscribes a member's open sockets when they are added, and sends them that conversation's events", async () => {
    const c = await socket(carol);
    const id = await group(h.app, alice, [bob]);
    await call(h.app, "POST", `/api/conversations/${id}/participants`, {
      token: alice.token,
      body: { user_id: carol.id },
    });
    await c.next(event("participant.added", id));
    await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: bob.token,
      body: { content: "welcome" },
    });
    expect((await c.next(event("message.created", id))).message.content).toBe("welcome");
    c.close();
  });

  it("unsubscribes a member's sockets when they leave: no later events reach them", async () => {
    const id = await group(h.app, alice, [bob, carol]);
    const c = await socket(carol);
    await call(h.app, "DELETE", `/api/conversations/${id}/participants/${carol.id}`, { token: carol.token });
    await c.next(event("participant.removed", id));
    await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "after you left" },
    });
    // A ping round trip after the send: had the event been published to carol, it would have come first.
    c.send({ type: "ping", ref: "after" });
    await c.next((f) => f.type === "pong" && f.ref === "after");
    expect(
      c.frames.some((f) => f.type === "event" && f.kind === "message.created" && f.conversation_id === id),
    ).toBe(false);
    c.close();
  });

  it("takes every socket out of a deleted conversation: typing there is refused and reaches nobody", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice);
    const b = await socket(bob, "json");
    expect((await call(h.app, "DELETE", `/api/conversations/${id}`, { token: alice.token })).status).toBe(
      204,
    );
    await a.next(event("conversation.deleted", id));
    await b.next(event("conversation.deleted", id));
    for (const encoding of ["msgpack", "json"] as const)
      expect(h.app.server?.subscriberCount(bunTopic(topics.conversation(id), encoding))).toBe(0);
    b.send({ type: "typing_start", ref: "t", conversation_id: id });
    expect(await b.next((f) => f.type === "error" && f.ref === "t")).toMatchObject({ code: "not_found" });
    // A ping round trip after it: had the typing been published to alice, it would have come first.
    a.send({ type: "ping", ref: "after" });
    await a.next((f) => f.type === "pong" && f.ref === "after");
    expect(a.frames.some((f) => f.type === "typing")).toBe(false);
    a.close();
    b.close();
  });

  it("refuses a removed member's next message at once, and a demoted one's post in a channel", async () => {
    const id = await group(h.app, alice, [bob, carol]);
    const c = await socket(carol);
    // carol's membership is now known in memory...
    c.send({ type: "message", ref: "before", conversation_id: id, client_msg_id: "rm-1", content: "hi" });
    expect(await c.next((f) => f.type === "ack" && f.ref === "before")).toMatchObject({
      client_msg_id: "rm-1",
    });
    // ...and alice removes her, well within the second the memory would otherwise be trusted.
    const removed = await call(h.app, "DELETE", `/api/conversations/${id}/participants/${carol.id}`, {
      token: alice.token,
    });
    expect(removed.status).toBe(204);
    c.send({
      type: "message",
      ref: "after",
      conversation_id: id,
      client_msg_id: "rm-2",
      content: "still here?",
    });
    expect(await c.next((f) => f.ref === "after")).toMatchObject({ type: "error", code: "not_found" });

    const channel = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [bob.id] },
    });
    expect(channel.status).toBe(201);
    const promoted = await call(
      h.app,
      "PUT",
      `/api/conversations/${channel.body.id}/participants/${bob.id}`,
      {
        token: alice.token,
        body: { role: "admin" },
      },
    );
    expect(promoted.body).toMatchObject({ role: "admin" });
    const b = await socket(bob);
    b.send({
      type: "message",
      ref: "admin",
      conversation_id: channel.body.id,
      client_msg_id: "ch-1",
      content: "news",
    });
    expect(await b.next((f) => f.ref === "admin")).toMatchObject({ type: "ack" });
    await call(h.app, "PUT", `/api/conversations/${channel.body.id}/participants/${bob.id}`, {
      token: alice.token,
      body: { role: "member" },
    });
    b.send({
      type: "message",
      ref: "member",
      conversation_id: channel.body.id,
      client_msg_id: "ch-2",
      content: "x",
    });
    expect(await b.next((f) => f.ref === "member")).toMatchObject({ type: "error", code: "forbidden" });
    b.close();
    c.close();
  });

  it("relays typing to the others and reactions, reads and acks as frames", async () => {
    const id = await group(h.app, alice, [bob]);
    const a = await socket(alice);
    const b = await socket(bob, "json");
    a.send({ type: "typing_start", conversation_id: id });
    expect(await b.next((f) => f.type === "typing")).toMatchObject({
      conversation_id: id,
      user_id: alice.id,
      state: "start",
    });
    a.send({ type: "message", ref: "m", conversation_id: id, client_msg_id: "t1", content: "typed" });
    const ack = await a.next((f) => f.type === "ack");
    b.send({ type: "message_ack", conversation_id: id, seq: ack.seq });
    // A dm's or group's receipts come live in `receipts` frames, the moves of a moment each.
    expect(await a.next((f) => f.type === "receipts" && f.conversation_id === id)).toEqual({
      type: "receipts",
      conversation_id: id,
      members: [{ user_id: bob.id, delivered: 1, read: 0 }],
      live: true,
    });
    b.send({ type: "message_read", ref: "rd", conversation_id: id, seq: ack.seq });
    expect(
      await a.next((f) => f.type === "receipts" && f.conversation_id === id && f.members[0].read > 0),
    ).toMatchObject({
      members: [{ user_id: bob.id, delivered: 0, read: 1 }],
      live: true,
    });
    expect(a.frames.some((f) => f.type === "receipt")).toBe(false);
    b.send({ type: "reaction", ref: "re", message_id: ack.message_id, emoji: "🎉", op: "add" });
    expect((await a.next(event("reaction.added", id))).message.reactions).toEqual([
      { user_id: bob.id, emoji: "🎉" },
    ]);
    a.close();
    b.close();
  });

  it("tells a channel member's receipts to their own devices only, not to the channel", async () => {
    const [owner, reader, other] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", name: "news", participant_ids: [reader.id, other.id] },
    });
    const id = made.body.id as string;
    const [o, r1, r2, x] = [
      await socket(owner),
      await socket(reader),
      await socket(reader),
      await socket(other),
    ];
    o.send({ type: "message", ref: "m", conversation_id: id, client_msg_id: "post", content: "news" });
    const ack = await o.next((f) => f.type === "ack");
    r1.send({ type: "message_read", ref: "rd", conversation_id: id, seq: ack.seq });
    // The reader's other device has it; then a message after it reaches everyone: had the receipt been
    // published to the channel, it would have come first.
    expect(await r2.next((f) => f.type === "receipt" && f.kind === "read")).toMatchObject({
      user_id: reader.id,
      seq: ack.seq,
    });
    o.send({ type: "message", ref: "m2", conversation_id: id, client_msg_id: "post2", content: "more news" });
    for (const s of [o, x]) await s.next((f) => f.type === "event" && f.message?.content === "more news");
    for (const s of [o, x]) expect(s.frames.some((f) => f.type === "receipt")).toBe(false);
    // Kept all the same: read over REST.
    const receipts = await call(h.app, "GET", `/api/messages/${ack.message_id}/receipts`, {
      token: owner.token,
    });
    expect(
      receipts.body.items.find((r: { user_id: string }) => r.user_id === reader.id).read_at,
    ).not.toBeNull();
  });

  it("relays key exchange payloads between users who share a conversation only", async () => {
    await group(h.app, alice, [bob]);
    const a = await socket(alice);
    const b = await socket(bob);
    const payload = new Uint8Array([1, 2, 3, 250]);
    a.send({ type: "key_exchange", ref: "k", to_user_id: bob.id, payload });
    const got = await b.next((f) => f.type === "key_exchange");
    expect(got).toMatchObject({ from_user_id: alice.id, from_device_id: alice.session_id });
    expect(new Uint8Array(got.payload)).toEqual(payload);
    const stranger = await signup(h.app);
    a.send({ type: "key_exchange", ref: "k2", to_user_id: stranger.id, payload });
    expect(await a.next((f) => f.type === "error" && f.ref === "k2")).toMatchObject({ code: "not_found" });
    a.close();
    b.close();
  });

  it("relays a key exchange to one device of the user only, and never to a device of someone else", async () => {
    await group(h.app, alice, [bob, carol]);
    const bobPhone = await socket(bob);
    // Bob's second device: a session of its own.
    const signin = await call(h.app, "POST", "/api/auth/signin", {
      body: { email: bob.email, password: bob.password },
    });
    expect(signin.status).toBe(200);
    const laptop = { ...bob, token: signin.body.access_token as string, session_id: signin.body.session_id };
    const bobLaptop = await socket(laptop);
    const c = await socket(carol);
    const a = await socket(alice);
    const payload = new Uint8Array([7, 7, 7]);
    a.send({ type: "key_exchange", ref: "d1", to_user_id: bob.id, to_device_id: laptop.session_id, payload });
    expect(await a.next((f) => f.type === "ok" && f.ref === "d1")).toBeDefined();
    expect(await bobLaptop.next((f) => f.type === "key_exchange")).toMatchObject({ from_user_id: alice.id });
    // Named as bob's, but carol's device: refused silently, like a device that is offline.
    a.send({ type: "key_exchange", ref: "d2", to_user_id: bob.id, to_device_id: carol.session_id, payload });
    expect(await a.next((f) => f.type === "ok" && f.ref === "d2")).toBeDefined();
    // A ping answered after both shows that nothing else was on its way to the phone or to carol.
    for (const s of [bobPhone, c]) {
      s.send({ type: "ping", ref: "after" });
      await s.next((f) => f.type === "pong" && f.ref === "after");
      expect(s.frames.some((f) => f.type === "key_exchange")).toBe(false);
    }
    for (const s of [a, bobPhone, bobLaptop, c]) s.close();
  });
});

describe("resume", () => {
  it("replays exactly the changes after each position, in order, then says resumed", async () => {
    const id = await group(h.app, alice, [bob]);
    const post = (content: string) =>
      call(h.app, "POST", `/api/conversations/${id}/messages`, { token: alice.token, body: { content } });
    const m1 = await post("one");
    const m2 = await post("two");
    // Bob saw up to seq 2, then was offline while: an edit, a delete, a reaction and a new message.
    await call(h.app, "PUT", `/api/messages/${m1.body.id}`, {
      token: alice.token,
      body: { content: "one!" },
    });
    await call(h.app, "DELETE", `/api/messages/${m2.body.id}`, { token: alice.token });
    await call(h.app, "POST", `/api/messages/${m1.body.id}/reactions`, {
      token: alice.token,
      body: { emoji: "✅" },
    });
    const m3 = await post("three");
    const b = await socket(bob);
    b.send({ type: "resume", ref: "rs", positions: { [id]: 2 } });
    const resumed = await b.next((f) => f.type === "resumed");
    expect(resumed).toMatchObject({ conversation_id: id, seq: 6, ref: "rs" });
    const replay = b.frames.filter((f) => f.type === "event" && f.conversation_id === id);
    expect(replay.map((f) => [f.kind, f.seq, f.message.id])).toEqual([
      ["message.deleted", 4, m2.body.id],
      ["message.changed", 5, m1.body.id],
      ["message.created", 6, m3.body.id],
    ]);
    expect(replay[1]?.message).toMatchObject({
      content: "one!",
      reactions: [{ user_id: alice.id, emoji: "✅" }],
    });
    b.close();
  });

  it("answers a position past the end of the log with resumed at the log's last seq, not the position", async () => {
    const id = await group(h.app, alice, [bob]);
    await call(h.app, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { content: "only one" },
    });
    const other = await group(h.app, alice, [bob]);
    const b = await socket(bob);
    // A client's position from before the server's store was restored from an older backup, say.
    b.send({ type: "resume", ref: "ahead", positions: { [id]: 50, [other]: 0 } });
    expect(await b.next((f) => f.type === "resumed" && f.conversation_id === id)).toMatchObject({
      ref: "ahead",
      seq: 1,
    });
    expect(await b.next((f) => f.type === "resumed" && f.conversation_id === other)).toMatchObject({
      seq: 0,
    });
    b.close();
  });

  it("reads a few conversations ahead of the one it sends, and answers in the order asked", async () => {
    const ids: string[] = [];
    for (let i = 0; i < RESUME_READ_AHEAD + 4; i++) {
      const id = await group(h.app, alice, [bob]);
      await call(h.app, "POST", `/api/conversations/${id}/messages`, {
        token: alice.token,
        body: { content: `in ${i}` },
      });
      ids.push(id);
    }
    const messages = h.deps.store.messages;
    const events = messages.events;
    let [inFlight, most, calls] = [0, 0, 0];
    // Each read takes its time, the later ones less: the answers come back out of order.
    messages.events = async (...args) => {
      const call = calls++;
      inFlight++;
      most = Math.max(most, inFlight);
      await Bun.sleep(Math.max(1, 40 - 3 * call));
      inFlight--;
      return events.apply(messages, args);
    };
    const b = await socket(bob);
    try {
      b.send({ type: "resume", ref: "many", positions: Object.fromEntries(ids.map((id) => [id, 0])) });
      await b.next((f) => f.type === "resumed" && f.conversation_id === ids.at(-1));
    } finally {
      messages.events = events;
    }
    expect(most).toBe(RESUME_READ_AHEAD);
    const replies = b.frames.filter((f) => f.type === "event" || f.type === "resumed");
    expect(replies.map((f) => [f.type, f.conversation_id])).toEqual(
      ids.flatMap((id) => [
        ["event", id],
        ["resumed", id],
      ]),
    );
    b.close();
  });

  it("says resync instead when more than RESUME_MAX changes are missing", async () => {
    const id = await group(h.app, alice, [bob]);
    for (let i = 0; i < 7; i++)
      await call(h.app, "POST", `/api/conversations/${id}/messages`, {
        token: alice.token,
        body: { content: `m${i}` },
      });
    const b = await socket(bob);
    b.send({ type: "resume", positions: { [id]: 0 } });
    expect(await b.next((f) => f.type === "resync")).toMatchObject({ conversation_id: id });
    b.close();
  });
});

describe("resume naming conversations it does not know", () => {
  /** Counts the store's membership reads while `run` runs. */
  async function membershipReads(run: () => Promise<void>): Promise<number> {
    const repo = h.deps.store.conversations;
    const saved = {
      participant: repo.participant,
      idsForUser: repo.idsForUser,
      byId: repo.byId,
      memberships: repo.memberships,
    };
    let reads = 0;
    for (const name of ["participant", "idsForUser", "byId", "memberships"] as const) {
      const original = saved[name] as (...args: unknown[]) => Promise<unknown>;
      (repo as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
        reads++;
        return original.apply(repo, args);
      };
    }
    try {
      await run();
    } finally {
      Object.assign(repo, saved);
    }
    return reads;
  }
  const unknownIds = (n: number) => Array.from({ length: n }, (_, i) => `01nosuchconversation${i}`);

  it("answers them with one error naming them all, and still catches up the conversations it is in", async () => {
    const [mine, alsoMine, notMine] = [
      await group(h.app, alice, [bob]),
      await group(h.app, alice, [bob]),
      await group(h.app, alice, [carol]),
    ];
    for (const [id, content] of [
      [mine, "one"],
      [mine, "two"],
      [alsoMine, "three"],
    ] as const)
      await call(h.app, "POST", `/api/conversations/${id}/messages`, {
        token: alice.token,
        body: { content },
      });
    const b = await socket(bob);
    const unknown = unknownIds(40);
    const positions = Object.fromEntries([
      [unknown[0], 0],
      [mine, 1],
      ...unknown.slice(1).map((id) => [id, 3]),
      [notMine, 0],
      [alsoMine, 0],
    ]);
    const reads = await membershipReads(async () => {
      b.send({ type: "resume", ref: "r", positions });
      await b.next((f) => f.type === "resumed" && f.conversation_id === alsoMine);
      b.send({ type: "ping", ref: "after" });
      await b.next((f) => f.type === "pong" && f.ref === "after");
    });
    const errors = b.frames.filter((f) => f.type === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ ref: "r", code: "not_found" });
    expect(errors[0]?.conversation_ids).toEqual([...unknown, notMine]);
    const replies = b.frames.filter((f) => f.ref === "r" || f.type === "event");
    expect(replies.map((f) => [f.type, f.conversation_id ?? null, f.seq ?? null])).toEqual([
      ["error", null, null],
      ["event", mine, 2],
      ["resumed", mine, 2],
      ["event", alsoMine, 1],
      ["resumed", alsoMine, 1],
    ]);
    // What the user is in is read once for the whole frame, not once per conversation named.
    expect(reads).toBe(1);
    b.close();
  });
});

describe("the msgpackr records subprotocol", () => {
  const plain = new Packr({ useRecords: false, mapsAsObjects: true });

  it("is chosen over plain msgpack when offered first or not, and over JSON", async () => {
    for (const offered of [
      ["parley.msgpack", "parley.msgpackr.1"],
      ["parley.json", "parley.msgpackr.1"],
    ]) {
      const s = await connect(url(alice), [...offered, `bearer.${alice.token}`]);
      open.push(s);
      expect(s.ws.protocol).toBe("parley.msgpackr.1");
      expect((await s.next((f) => f.type === "hello")).user_id).toBe(alice.id);
      s.close();
      await s.closed;
    }
  });

  it("delivers the same event to records, plain msgpack and JSON sockets, the records frame the smallest", async () => {
    const id = await group(h.app, alice, [bob]);
    const sender = await socket(alice, "msgpackr");
    const [records, binary, text] = [
      await socket(bob, "msgpackr"),
      await socket(bob, "msgpack"),
      await socket(bob, "json"),
    ];
    // The receipts of the tests before, gathered for a moment, are told by now: none comes in between.
    await Bun.sleep(2 * RECEIPT_WINDOW_MS);
    const sizes = new Map<TestSocket, number>();
    for (const s of [records, binary])
      s.ws.addEventListener("message", (e) => sizes.set(s, (e.data as ArrayBuffer).byteLength));
    sender.send({ type: "message", ref: 5, conversation_id: id, client_msg_id: "rec-1", content: "records" });
    const ack = await sender.next((f) => f.type === "ack" && f.ref === 5);
    expect(ack).toMatchObject({ client_msg_id: "rec-1", seq: 1 });
    const got = await records.next(event("message.created", id));
    expect(got.message).toMatchObject({ id: ack.message_id, content: "records", client_msg_id: "rec-1" });
    expect(await binary.next(event("message.created", id))).toEqual(got);
    expect(await text.next(event("message.created", id))).toEqual(got);
    // The keys travel in the shared structures, not in the frame.
    expect(sizes.get(records)).toBeLessThan(0.75 * (sizes.get(binary) as number));
    // Replayed events (the whole message) come in records too.
    records.send({ type: "resume", ref: "again", positions: { [id]: 0 } });
    const replayed = await records.next(
      (f) => event("message.created", id)(f) && f.message.version_seq === 1,
    );
    expect(replayed.message).toMatchObject({ id: ack.message_id, status: "sent", deleted: false });
    for (const s of [sender, records, binary, text]) s.close();
  });

  it("answers a frame it cannot read as records with bad_frame, and stays open", async () => {
    const s = await socket(alice, "msgpackr");
    // Plain MessagePack writes 64 as one byte, which records read as a structure: not a frame.
    s.sendRaw(plain.pack({ type: "ping", ref: 64 }));
    expect(await s.next((f) => f.type === "error" && f.code === "bad_frame")).toBeDefined();
    s.sendRaw(new Uint8Array([0xc1, 0xff]));
    await waitFor(() => s.frames.filter((f) => f.code === "bad_frame").length === 2 || undefined);
    // A record the server does not share is defined in the frame itself: read like any other.
    s.sendRaw(recordsPackr.pack({ ref: "own", type: "ping", extra: 64 }));
    expect(await s.next((f) => f.type === "pong" && f.ref === "own")).toBeDefined();
    s.close();
  });
});

describe("limits and bad input", () => {
  it("answers garbage with bad_frame, unknown types with unknown_type, and stays open", async () => {
    const a = await socket(alice);
    a.sendRaw(new Uint8Array([0xc1, 0xff, 0x00]));
    expect(await a.next((f) => f.type === "error" && f.code === "bad_frame")).toBeDefined();
    a.send({ type: "teleport", ref: "u" });
    expect(await a.next((f) => f.type === "error" && f.ref === "u")).toMatchObject({ code: "unknown_type" });
    a.send(["not", "an", "object"]);
    a.sendRaw("text on a binary connection");
    a.send({ type: "ping", ref: "still" });
    expect(await a.next((f) => f.type === "pong" && f.ref === "still")).toBeDefined();
    a.close();
  });

  it("closes with 1009 on a frame over WS_MAX_PAYLOAD", async () => {
    const a = await socket(alice);
    a.send({ type: "ping", pad: "x".repeat(5000) });
    expect((await a.closed).code).toBe(1009);
  });

  it("closes the sockets of a revoked session with 4501", async () => {
    const user = await signup(h.app);
    const s = await socket(user);
    await call(h.app, "POST", "/api/auth/signout", { token: user.token });
    expect((await s.closed).code).toBe(4501);
  });

  it("closes with 4501, before hello, a socket whose session is revoked while its upgrade is under way", async () => {
    const user = await signup(h.app);
    const broker = h.deps.broker;
    const original = broker.countSockets;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let held = false;
    // The upgrade has found the session live and is counting the socket when the session is revoked.
    broker.countSockets = async (userId, delta) => {
      const n = await original.call(broker, userId, delta);
      if (userId === user.id && delta === 1 && !held) {
        held = true;
        await gate;
      }
      return n;
    };
    try {
      const opening = connect(url(user), [SUBPROTOCOLS.json, `bearer.${user.token}`]);
      await waitFor(() => (held ? true : undefined));
      expect((await call(h.app, "POST", "/api/auth/signout", { token: user.token })).status).toBeLessThan(
        300,
      );
      release();
      const s = await opening;
      open.push(s);
      const closed = await Promise.race([s.closed, Bun.sleep(3000).then(() => ({ code: "still open" }))]);
      expect(closed.code).toBe(4501);
      expect(s.frames.some((f) => f.type === "hello")).toBe(false);
    } finally {
      broker.countSockets = original;
    }
  });
});
