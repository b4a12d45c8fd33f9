// MAX_FILE_SIZE and ALLOWED_FILE_TYPES hold for what a message's attachments say of their files. The
// messages service checks them, for REST and WebSocket sends alike.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { fileTypes } from "../../src/modules/messages/service.ts";
import { call, type Harness, harness, signup } from "../helpers.ts";

let h: Harness;
let alice: Awaited<ReturnType<typeof signup>>;
let conversationId: string;
beforeAll(async () => {
  h = await harness({ MAX_FILE_SIZE: "1024", ALLOWED_FILE_TYPES: "image/png, application/*" });
  const bob = await signup(h.app);
  alice = await signup(h.app);
  const conv = await call(h.app, "POST", "/api/conversations", {
    token: alice.token,
    body: { conversation_type: "group", participant_ids: [bob.id] },
  });
  conversationId = conv.body.id;
});
afterAll(() => h.close());

const file = (file_size: number, mime_type: string) => ({
  file_id: "f-1",
  file_name: "f",
  file_size,
  mime_type,
});
const send = (...attachments: ReturnType<typeof file>[]) =>
  call(h.app, "POST", `/api/conversations/${conversationId}/messages`, {
    token: alice.token,
    body: { attachments },
  });

describe("attachments", () => {
  it("takes files up to MAX_FILE_SIZE of the allowed types", async () => {
    for (const type of ["image/png", "IMAGE/PNG; name=x", "application/pdf", "application/zip"]) {
      const res = await send(file(1024, type));
      expect({ type, status: res.status }).toEqual({ type, status: 201 });
    }
  });

  it("refuses a file over MAX_FILE_SIZE with 422, naming the attachment", async () => {
    const res = await send(file(10, "image/png"), file(1025, "image/png"));
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: "validation_failed", field: "attachments.1.file_size" });
  });

  it("refuses a type ALLOWED_FILE_TYPES does not name with 422, and stores nothing", async () => {
    const before = await call(h.app, "GET", `/api/conversations/${conversationId}`, { token: alice.token });
    for (const type of ["image/gif", "text/html", "application", "x/image/png"]) {
      const res = await send(file(10, "image/png"), file(10, type));
      expect({ type, status: res.status, field: res.body.error?.field }).toEqual({
        type,
        status: 422,
        field: "attachments.1.mime_type",
      });
    }
    const after = await call(h.app, "GET", `/api/conversations/${conversationId}`, { token: alice.token });
    expect(after.body.last_seq).toBe(before.body.last_seq);
  });
});

describe("fileTypes", () => {
  it("matches types, families and a lone star, without case or parameters", () => {
    const allowed = fileTypes("image/png,application/*");
    expect(["image/png", "Image/PNG", "image/png;q=1", "application/pdf"].map(allowed)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(["image/gif", "", "png", "text/plain"].map(allowed)).toEqual([false, false, false, false]);
    expect(fileTypes("*")("anything/at-all")).toBe(true);
    expect(fileTypes("")("image/png")).toBe(false);
  });
});
