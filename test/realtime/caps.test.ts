// The caps written into the WebSocket frame schema (protocol.ts): a key_exchange payload of 16 KiB, 20
// attachments on a message, 1000 positions in a resume. At the cap a frame is taken; one past it is
// answered with a validation_failed error echoing its ref, and nothing is done for it. (The error says
// "frame: Expected union value" for all of them, not the field: the frame schema is one union.)

import { afterAll, beforeAll, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup } from "../helpers.ts";
import { type Frame, type TestSocket, userSocket } from "./ws-client.ts";

let h: Harness;
let base: string;
type User = Awaited<ReturnType<typeof signup>>;
let alice: User;
let bob: User;
let conversation: string;
const open: TestSocket[] = [];

beforeAll(async () => {
  h = await harness();
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
  [alice, bob] = [await signup(h.app), await signup(h.app)];
  conversation = await group(h.app, alice, [bob]);
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

const socket = (u: User, encoding: "msgpack" | "json" = "msgpack") => userSocket(base, u, encoding, open);
const reply = (ref: string) => (f: Frame) => (f.type === "ok" || f.type === "error") && f.ref === ref;
/** Everything the server meant to send `s` before now has arrived once a ping is answered. */
async function settle(s: TestSocket, ref: string) {
  s.send({ type: "ping", ref });
  await s.next((f) => f.type === "pong" && f.ref === ref);
}

it("relays a key_exchange payload of 16 KiB and refuses one of 16 KiB and a byte, relaying nothing", async () => {
  const [a, b] = [await socket(alice), await socket(bob)];
  const at = new Uint8Array(16 * 1024).fill(7);
  a.send({ type: "key_exchange", ref: "at", to_user_id: bob.id, payload: at });
  expect(await a.next(reply("at"))).toMatchObject({ type: "ok" });
  const got = await b.next((f) => f.type === "key_exchange");
  expect(new Uint8Array(got.payload).byteLength).toBe(16 * 1024);

  a.send({ type: "key_exchange", ref: "over", to_user_id: bob.id, payload: new Uint8Array(16 * 1024 + 1) });
  const refused = await a.next(reply("over"));
  expect([refused.type, refused.code]).toEqual(["error", "validation_failed"]);
  await settle(b, "after");
  expect(b.frames.filter((f) => f.type === "key_exchange")).toHaveLength(1);
});

it("caps a key_exchange payload sent as JSON text at 16 KiB as base64url, padded or not", async () => {
  const [a, b] = [await socket(alice, "json"), await socket(bob, "json")];
  const full = Buffer.from(new Uint8Array(16 * 1024).fill(7));
  const padded = `${full.toString("base64url")}==`; // 16,384 bytes: 21,846 characters and 2 of padding
  for (const [ref, payload] of [
    ["unpadded", full.toString("base64url")],
    ["padded", padded],
  ]) {
    a.send({ type: "key_exchange", ref, to_user_id: bob.id, payload });
    expect(await a.next(reply(ref as string))).toMatchObject({ type: "ok" });
    // Relayed as the bytes it stands for: base64url again to a JSON socket, unpadded.
    const got = await b.next((f) => f.type === "key_exchange");
    b.frames.splice(b.frames.indexOf(got), 1);
    expect(got.payload).toBe(full.toString("base64url"));
  }
  // 16 KiB and a byte (or two) still fit in 21,848 characters unpadded: held to the bytes they stand for.
  const over = Buffer.from(new Uint8Array(16 * 1024 + 3).fill(7)).toString("base64url");
  for (const [ref, payload] of [
    ["over", over],
    ["over-by-1", Buffer.from(new Uint8Array(16 * 1024 + 1).fill(7)).toString("base64url")],
    ["over-by-2", Buffer.from(new Uint8Array(16 * 1024 + 2).fill(7)).toString("base64url")],
    ["not-base64url", `${"A".repeat(100)}+/`],
    ["no-whole-byte", "AAAAA"], // 5 characters: the last stands for no byte
  ]) {
    a.send({ type: "key_exchange", ref, to_user_id: bob.id, payload });
    expect(await a.next(reply(ref as string))).toMatchObject({ type: "error", code: "validation_failed" });
  }
  await settle(b, "after");
  // The two relayed were taken off above: none of the refused ones came.
  expect(b.frames.filter((f) => f.type === "key_exchange")).toHaveLength(0);
});

it("relays a key_exchange payload a JSON client sent as base64url to a MessagePack socket as bin", async () => {
  const [a, b] = [await socket(alice, "json"), await socket(bob, "msgpack")];
  const bytes = new Uint8Array([0xfb, 0xff, 0x00, 0x41, 7]);
  a.send({
    type: "key_exchange",
    ref: "j2m",
    to_user_id: bob.id,
    payload: Buffer.from(bytes).toString("base64url"),
  });
  expect(await a.next(reply("j2m"))).toMatchObject({ type: "ok" });
  const got = await b.next((f) => f.type === "key_exchange");
  expect(got.payload).toBeInstanceOf(Uint8Array);
  expect(new Uint8Array(got.payload)).toEqual(bytes);
});

it("takes a message frame with 20 attachments and refuses one with 21, storing nothing", async () => {
  const a = await socket(alice);
  const attachments = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      file_id: `f-${i}`,
      file_name: `photo-${i}.png`,
      file_size: 1,
      mime_type: "image/png",
    }));
  const stored = async () =>
    (await call(h.app, "GET", `/api/conversations/${conversation}/messages`, { token: alice.token })).body
      .items.length;
  const before = await stored();
  a.send({
    type: "message",
    ref: "at",
    conversation_id: conversation,
    client_msg_id: `caps-at-${Date.now()}`,
    attachments: attachments(20),
  });
  expect(await a.next((f) => f.type === "ack" && f.ref === "at")).toBeDefined();
  a.send({
    type: "message",
    ref: "over",
    conversation_id: conversation,
    client_msg_id: `caps-over-${Date.now()}`,
    attachments: attachments(21),
  });
  const refused = await a.next((f) => f.ref === "over" && (f.type === "error" || f.type === "ack"));
  expect([refused.type, refused.code]).toEqual(["error", "validation_failed"]);
  expect(await stored()).toBe(before + 1);
});

it("takes a resume naming 1000 conversations and refuses one naming 1001 before resuming any", async () => {
  const b = await socket(bob);
  // The conversation bob is in, among others he is not in (whatever is answered for those, the frame is
  // within the cap and his own conversation is resumed).
  const positions = (n: number) => {
    const p: Record<string, number> = { [conversation]: 0 };
    for (let i = 1; i < n; i++) p[`not-a-conversation-${i}`] = 0;
    return p;
  };
  b.send({ type: "resume", ref: "at", positions: positions(1000) });
  expect(await b.next((f) => f.type === "resumed" && f.ref === "at", 10_000)).toMatchObject({
    conversation_id: conversation,
  });
  expect(b.frames.some((f) => f.ref === "at" && f.code === "validation_failed")).toBe(false);

  b.send({ type: "resume", ref: "over", positions: positions(1001) });
  const refused = await b.next((f) => f.type === "error" && f.ref === "over");
  expect(refused.code).toBe("validation_failed");
  await settle(b, "after");
  expect(b.frames.some((f) => f.ref === "over" && f.type !== "error")).toBe(false);
  expect(b.frames.filter((f) => f.ref === "over")).toHaveLength(1);
});
