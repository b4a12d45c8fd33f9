// The WebSocket side of a store that cannot write (a full disk): a socket opens and stays open though
// presence cannot be written, and a message the store refuses is answered unavailable, not internal.

import { afterAll, beforeAll, expect, it } from "bun:test";
import { SUBPROTOCOLS } from "../../src/realtime/frames.ts";
import { group, type Harness, harness, signup, waitFor } from "../helpers.ts";
import { connect } from "./ws-client.ts";

let h: Harness;
let base = "";
beforeAll(async () => {
  h = await harness();
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  await h.app.stop(true);
  await h.close();
});

/** What bun:sqlite throws when the disk is full. */
const diskFull = () => Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });

it("keeps a socket open when the store cannot write its user online, and answers its frames", async () => {
  const alice = await signup(h.app);
  const users = h.deps.store.users;
  const [update, showChosen] = [users.update.bind(users), users.showChosen.bind(users)];
  users.update = users.showChosen = async () => {
    throw diskFull();
  };
  try {
    const s = await connect(`${base}/ws/${alice.id}/${alice.session_id}`, [
      SUBPROTOCOLS.json,
      `bearer.${alice.token}`,
    ]);
    await s.next((f) => f.type === "hello");
    s.send({ type: "ping", ref: "p1" });
    expect(await s.next((f) => f.ref === "p1")).toMatchObject({ type: "pong" });
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
    s.close();
  } finally {
    users.update = update;
    users.showChosen = showChosen;
  }
  expect(h.logs.some((l) => l.includes("could not write the user online"))).toBe(true);
});

it("answers a message the store cannot write with unavailable, the socket still open", async () => {
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  const id = await group(h.app, alice, [bob]);
  const s = await connect(`${base}/ws/${alice.id}/${alice.session_id}`, [
    SUBPROTOCOLS.json,
    `bearer.${alice.token}`,
  ]);
  await s.next((f) => f.type === "hello");
  const messages = h.deps.store.messages;
  const append = messages.append.bind(messages);
  messages.append = async () => {
    throw diskFull();
  };
  try {
    s.send({ type: "message", ref: "m1", conversation_id: id, client_msg_id: "c1", content: "hi" });
    expect(await s.next((f) => f.ref === "m1")).toMatchObject({ type: "error", code: "unavailable" });
  } finally {
    messages.append = append;
  }
  s.send({ type: "message", ref: "m2", conversation_id: id, client_msg_id: "c1", content: "hi" });
  expect(await s.next((f) => f.ref === "m2")).toMatchObject({ type: "ack" });
  s.close();
});

it("writes a presence the store refused once it takes writes again, as the gateway tends", async () => {
  const alice = await signup(h.app);
  const users = h.deps.store.users;
  const [update, showChosen] = [users.update.bind(users), users.showChosen.bind(users)];
  const status = async () => (await users.byId(alice.id))?.status;
  users.update = users.showChosen = async () => {
    throw diskFull();
  };
  let s: Awaited<ReturnType<typeof connect>>;
  try {
    s = await connect(`${base}/ws/${alice.id}/${alice.session_id}`, [
      SUBPROTOCOLS.json,
      `bearer.${alice.token}`,
    ]);
    await s.next((f) => f.type === "hello");
  } finally {
    users.update = update;
    users.showChosen = showChosen;
  }
  expect(await status()).toBe("offline");
  await h.deps.gateway.tend();
  expect(await status()).toBe("online");
  // And the other way: the last socket closes while the store refuses the offline write.
  let refused = 0;
  users.update = async () => {
    refused++;
    throw diskFull();
  };
  try {
    s.close();
    await waitFor(() => (refused > 0 ? true : undefined));
    // Still refused when the gateway first tends: kept for the next time.
    await h.deps.gateway.tend();
    expect(refused).toBeGreaterThan(1);
  } finally {
    users.update = update;
  }
  expect(await status()).toBe("online");
  await h.deps.gateway.tend();
  expect(await status()).toBe("offline");
});

it("tells the peers, as the gateway tends, a presence written while the store would not say who they are", async () => {
  const [alice, bob] = [await signup(h.app), await signup(h.app)];
  await group(h.app, alice, [bob]);
  const open = async (u: typeof alice) => {
    const s = await connect(`${base}/ws/${u.id}/${u.session_id}`, [SUBPROTOCOLS.json, `bearer.${u.token}`]);
    await s.next((f) => f.type === "hello");
    return s;
  };
  const b = await open(bob);
  const a = await open(alice);
  const told = (status: string) => (f: { type: string; user_id?: string; status?: string }) =>
    f.type === "presence" && f.user_id === alice.id && f.status === status;
  await b.next(told("online"));
  // The offline write lands, and the read of whom to tell fails after it (a store a network away, say).
  const conversations = h.deps.store.conversations;
  const peersOf = conversations.peersOf.bind(conversations);
  let refused = 0;
  conversations.peersOf = async (userId) => {
    if (userId !== alice.id) return peersOf(userId);
    refused++;
    throw Object.assign(new Error("connection reset"), { code: "ECONNRESET" });
  };
  try {
    a.close();
    await waitFor(() => (refused > 0 ? true : undefined));
    await h.deps.gateway.tend();
  } finally {
    conversations.peersOf = peersOf;
  }
  expect((await h.deps.store.users.byId(alice.id))?.status).toBe("offline");
  expect(b.frames.some(told("offline"))).toBe(false);
  // Bob saw her online with no socket: told once the store answers, not left so for good.
  await h.deps.gateway.tend();
  expect(await b.next(told("offline"))).toMatchObject({ last_seen: expect.any(String) });
  b.close();
});
