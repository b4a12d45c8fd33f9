// Socket limits at the edge of their configured values: RESUME_MAX changes are replayed and one more is a
// resync, a frame of WS_MAX_PAYLOAD bytes is read and one byte more closes 1009, and the frame rate
// refills at WS_RATE_PER_SECOND, not faster. Tests of these past their edge alone passed a limit off by one.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, group, type Harness, harness, signup } from "../helpers.ts";
import { connect, type TestSocket } from "./ws-client.ts";

const MAX_PAYLOAD = 2048;
const RESUME_MAX = 5;

let h: Harness;
let base: string;
const open: TestSocket[] = [];
beforeAll(async () => {
  h = await harness({ WS_MAX_PAYLOAD: String(MAX_PAYLOAD), RESUME_MAX: String(RESUME_MAX) });
  h.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `ws://127.0.0.1:${h.app.server?.port}`;
});
afterAll(async () => {
  for (const s of open) s.close();
  await h.app.stop(true);
  await h.close();
});

async function socket(u: Awaited<ReturnType<typeof signup>>) {
  const s = await connect(`${base}/ws/${u.id}/${u.session_id}`, ["parley.json", `bearer.${u.token}`]);
  open.push(s);
  await s.next((f) => f.type === "hello");
  return s;
}

describe("RESUME_MAX", () => {
  it("replays exactly RESUME_MAX changes, and answers resync at one more", async () => {
    const [alice, bob] = [await signup(h.app), await signup(h.app)];
    const id = await group(h.app, alice, [bob]);
    const post = (content: string) =>
      call(h.app, "POST", `/api/conversations/${id}/messages`, { token: alice.token, body: { content } });
    const from = (await call(h.app, "GET", `/api/conversations/${id}`, { token: bob.token })).body.last_seq;
    for (let i = 0; i < RESUME_MAX; i++) expect((await post(`m${i}`)).status).toBe(201);
    const b = await socket(bob);
    const answer = async (ref: string, seq: number) => {
      b.send({ type: "resume", ref, positions: { [id]: seq } });
      return b.next((f) => (f.type === "resumed" || f.type === "resync") && f.ref === ref);
    };
    expect((await answer("at", from)).type).toBe("resumed");
    // Nothing was sent live meanwhile: every event of the conversation so far is the catch-up.
    const replayed = b.frames.filter((f) => f.type === "event" && f.conversation_id === id);
    expect(replayed).toHaveLength(RESUME_MAX);
    expect((await post("one more")).status).toBe(201);
    expect(await answer("over", from)).toMatchObject({ type: "resync", conversation_id: id });
    expect((await answer("at again", from + 1)).type).toBe("resumed");
  });
});

describe("WS_MAX_PAYLOAD", () => {
  /** A JSON ping of exactly `bytes` bytes. */
  const ping = (ref: string, bytes: number) => {
    const bare = JSON.stringify({ type: "ping", ref, pad: "" });
    return JSON.stringify({ type: "ping", ref, pad: "x".repeat(bytes - bare.length) });
  };

  it("reads a frame of WS_MAX_PAYLOAD bytes, and closes with 1009 on one a byte longer", async () => {
    const s = await socket(await signup(h.app));
    const at = ping("at", MAX_PAYLOAD);
    expect(at.length).toBe(MAX_PAYLOAD);
    s.sendRaw(at);
    await s.next((f) => f.ref === "at");
    s.sendRaw(ping("over", MAX_PAYLOAD + 1));
    expect((await s.closed).code).toBe(1009);
  });
});

describe("WS_RATE_PER_SECOND", () => {
  it("refills a socket's frames at WS_RATE_PER_SECOND (2): refused 150 ms after its burst, taken 600 ms later", async () => {
    const slow = await harness({ WS_RATE_PER_SECOND: "2", WS_RATE_BURST: "1" });
    try {
      slow.app.listen({ port: 0, hostname: "127.0.0.1" });
      const user = await signup(slow.app);
      const s = await connect(`ws://127.0.0.1:${slow.app.server?.port}/ws/${user.id}/${user.session_id}`, [
        "parley.json",
        `bearer.${user.token}`,
      ]);
      open.push(s);
      await s.next((f) => f.type === "hello");
      s.send({ type: "ping", ref: "first" });
      expect((await s.next((f) => f.ref === "first")).type).toBe("pong");
      // At the default 20 a second, 150 ms would have refilled three frames.
      await Bun.sleep(150);
      s.send({ type: "ping", ref: "soon" });
      expect(await s.next((f) => f.ref === "soon")).toMatchObject({ type: "error", code: "rate_limited" });
      await Bun.sleep(600);
      s.send({ type: "ping", ref: "later" });
      expect((await s.next((f) => f.ref === "later")).type).toBe("pong");
    } finally {
      await slow.app.stop(true);
      await slow.close();
    }
  });
});
