// Typing indicators over real sockets: who may type where, and what the others see.

import { afterEach, describe, expect, it } from "bun:test";
import { call, type Harness, harness, signup, waitFor } from "../helpers.ts";
import { userSocket as openUserSocket, type SocketUser, type TestSocket } from "./ws-client.ts";

let h: Harness | undefined;
const open: TestSocket[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) s.close();
  await h?.app.stop(true);
  await h?.close();
  h = undefined;
});

async function start() {
  h = await harness();
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  return { h, base: `ws://127.0.0.1:${h.app.server?.port}` };
}
const userSocket = (base: string, u: SocketUser) => openUserSocket(base, u, "msgpack", open);
/** A ping round trip: whatever was published to the socket before it has arrived. */
async function settled(s: TestSocket, ref: string) {
  s.send({ type: "ping", ref });
  await s.next((f) => f.type === "pong" && f.ref === ref);
}

describe("typing", () => {
  it("refuses typing in a channel from a member who cannot post there, and lets its owner and admins type", async () => {
    const { h, base } = await start();
    const [owner, admin, reader] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const channel = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", participant_ids: [admin.id, reader.id], name: "news" },
    });
    expect(channel.status).toBe(201);
    const id = channel.body.id as string;
    const promoted = await call(h.app, "PUT", `/api/conversations/${id}/participants/${admin.id}`, {
      token: owner.token,
      body: { role: "admin" },
    });
    expect(promoted.status).toBe(200);
    const [o, a, r] = [
      await userSocket(base, owner),
      await userSocket(base, admin),
      await userSocket(base, reader),
    ];

    r.send({ type: "typing_start", ref: "r1", conversation_id: id });
    expect(await r.next((f) => f.ref === "r1")).toMatchObject({ type: "error", code: "forbidden" });
    r.send({ type: "typing_stop", ref: "r2", conversation_id: id });
    expect(await r.next((f) => f.ref === "r2")).toMatchObject({ type: "error", code: "forbidden" });
    await settled(o, "p1");
    expect(o.frames.some((f) => f.type === "typing")).toBe(false);

    a.send({ type: "typing_start", conversation_id: id });
    expect(await r.next((f) => f.type === "typing")).toMatchObject({ user_id: admin.id, state: "start" });
    o.send({ type: "typing_start", conversation_id: id });
    expect(await r.next((f) => f.type === "typing" && f.user_id === owner.id)).toMatchObject({
      state: "start",
    });
  });

  it("ends a typing indicator as soon as the socket that started it closes, not 6 s later", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const dm = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const id = dm.body.id as string;
    const a = await userSocket(base, alice);
    const b = await userSocket(base, bob);
    a.send({ type: "typing_start", conversation_id: id });
    await b.next((f) => f.type === "typing" && f.state === "start");
    const t0 = Date.now();
    a.close();
    expect(await b.next((f) => f.type === "typing" && f.state === "stop", 3000)).toMatchObject({
      conversation_id: id,
      user_id: alice.id,
    });
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("ends the typing of a member removed from the conversation at once, for those still in it", async () => {
    const { h, base } = await start();
    const [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "group", participant_ids: [bob.id, carol.id] },
    });
    const id = made.body.id as string;
    const b = await userSocket(base, bob);
    const c = await userSocket(base, carol);
    b.send({ type: "typing_start", conversation_id: id });
    await c.next((f) => f.type === "typing" && f.state === "start");
    const t0 = Date.now();
    const removed = await call(h.app, "DELETE", `/api/conversations/${id}/participants/${bob.id}`, {
      token: alice.token,
    });
    expect(removed.status).toBe(204);
    expect(await c.next((f) => f.type === "typing" && f.state === "stop", 3000)).toMatchObject({
      conversation_id: id,
      user_id: bob.id,
    });
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("ends at once the typing of a channel admin demoted to reader, who may type there no more", async () => {
    const { h, base } = await start();
    const [owner, admin, reader] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const channel = await call(h.app, "POST", "/api/conversations", {
      token: owner.token,
      body: { conversation_type: "channel", participant_ids: [admin.id, reader.id], name: "news" },
    });
    const id = channel.body.id as string;
    const role = (role: string) =>
      call(h.app, "PUT", `/api/conversations/${id}/participants/${admin.id}`, {
        token: owner.token,
        body: { role },
      });
    expect((await role("admin")).status).toBe(200);
    const [a, r] = [await userSocket(base, admin), await userSocket(base, reader)];
    a.send({ type: "typing_start", conversation_id: id });
    await r.next((f) => f.type === "typing" && f.state === "start");
    const t0 = Date.now();
    expect((await role("member")).status).toBe(200);
    expect(await r.next((f) => f.type === "typing" && f.state === "stop", 3000)).toMatchObject({
      conversation_id: id,
      user_id: admin.id,
    });
    expect(Date.now() - t0).toBeLessThan(3000);
    // Their own stop would now be refused: the server's was the only way to end it before it expired.
    a.send({ type: "typing_stop", ref: "s", conversation_id: id });
    expect(await a.next((f) => f.ref === "s")).toMatchObject({ type: "error", code: "forbidden" });
  });

  it("leaves a group member's typing alone when they are made admin or member again", async () => {
    const { h, base } = await start();
    const [alice, bob, carol] = [await signup(h.app), await signup(h.app), await signup(h.app)];
    const made = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "group", participant_ids: [bob.id, carol.id] },
    });
    const id = made.body.id as string;
    const b = await userSocket(base, bob);
    const c = await userSocket(base, carol);
    b.send({ type: "typing_start", conversation_id: id });
    await c.next((f) => f.type === "typing" && f.state === "start");
    for (const role of ["admin", "member"]) {
      const res = await call(h.app, "PUT", `/api/conversations/${id}/participants/${bob.id}`, {
        token: alice.token,
        body: { role },
      });
      expect(res.status).toBe(200);
      await c.next((f) => f.type === "event" && f.kind === "participant.updated" && f.role === role);
    }
    await settled(c, "p");
    expect(c.frames.some((f) => f.type === "typing" && f.state === "stop")).toBe(false);
  });

  it("leaves a user typing on another device when one of their sockets that was not typing closes", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const dm = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const id = dm.body.id as string;
    const phone = await userSocket(base, alice);
    const laptop = await userSocket(base, alice);
    const b = await userSocket(base, bob);
    phone.send({ type: "typing_start", conversation_id: id });
    await b.next((f) => f.type === "typing" && f.state === "start");
    // The laptop takes over the typing (its start is the latest), then the phone goes away.
    laptop.send({ type: "typing_start", conversation_id: id });
    await waitFor(() => (b.frames.filter((f) => f.type === "typing").length === 2 ? true : undefined));
    phone.close();
    await phone.closed;
    // A message from alice after the close: had the close ended her typing, the stop would come before it.
    laptop.send({ type: "message", ref: "m", conversation_id: id, client_msg_id: "after", content: "hi" });
    await b.next((f) => f.type === "event" && f.message?.client_msg_id === "after");
    expect(b.frames.some((f) => f.type === "typing" && f.state === "stop")).toBe(false);
  });

  it("answers a typing frame that carries a ref with ok {ref}, as the other frames without a reply of their own", async () => {
    const { h, base } = await start();
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const dm = await call(h.app, "POST", "/api/conversations", {
      token: alice.token,
      body: { conversation_type: "dm", participant_ids: [bob.id] },
    });
    const id = dm.body.id as string;
    const a = await userSocket(base, alice);
    const b = await userSocket(base, bob);
    a.send({ type: "typing_start", ref: "t1", conversation_id: id });
    expect(await a.next((f) => f.ref === "t1")).toEqual({ type: "ok", ref: "t1" });
    expect(await b.next((f) => f.type === "typing")).toMatchObject({ user_id: alice.id, state: "start" });
    a.send({ type: "typing_stop", ref: 2, conversation_id: id });
    expect(await a.next((f) => f.ref === 2)).toEqual({ type: "ok", ref: 2 });
    expect(await b.next((f) => f.type === "typing" && f.state === "stop")).toMatchObject({
      user_id: alice.id,
    });
    // Without a ref, nothing answers but the typing frame itself.
    a.send({ type: "typing_start", conversation_id: id });
    await waitFor(() => (b.frames.filter((f) => f.type === "typing").length === 3 ? true : undefined));
    await settled(a, "p");
    expect(a.frames.filter((f) => f.type === "ok").map((f) => f.ref)).toEqual(["t1", 2]);
  });
});
