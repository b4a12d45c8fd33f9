import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { call, type Harness, harness, signup } from "../helpers.ts";

let h: Harness;
let alice: Awaited<ReturnType<typeof signup>>;
let bob: Awaited<ReturnType<typeof signup>>;
beforeAll(async () => {
  h = await harness();
  alice = await signup(h.app, {
    username: "alice_w",
    display_name: "Alice Wonder",
    email: "alice@example.com",
  });
  bob = await signup(h.app, { username: "bob.b", display_name: "Bobby Tables", email: "bob@example.com" });
  await signup(h.app, { username: "alfred", display_name: "Zed", email: "alfred@example.com" });
  await signup(h.app, { username: "carol", display_name: "Alina", email: "carol@example.com" });
});
afterAll(() => h.close());

describe("GET /api/users", () => {
  it("matches a prefix of username or display name, case-insensitively", async () => {
    const res = await call(h.app, "GET", "/api/users?q=AL", { token: bob.token });
    expect(res.status).toBe(200);
    expect(res.body.items.map((u: { username: string }) => u.username)).toEqual([
      "alfred",
      "alice_w",
      "carol",
    ]);
    expect(res.body.next_cursor).toBeNull();
  });

  it("pages with an opaque cursor until next_cursor is null", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/users?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await call(h.app, "GET", url, { token: bob.token });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.items.map((u: { username: string }) => u.username));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(["alfred", "alice_w", "bob.b", "carol"]);
  });

  it("shows other users without their email", async () => {
    const res = await call(h.app, "GET", "/api/users?q=alice", { token: bob.token });
    expect(res.body.items[0].email).toBeUndefined();
  });

  it("refuses a bad limit or cursor with 422", async () => {
    for (const q of ["limit=0", "limit=101", "limit=abc", "cursor=%00%01"]) {
      const res = await call(h.app, "GET", `/api/users?${q}`, { token: bob.token });
      expect({ q, status: res.status, code: res.body.error.code }).toEqual({
        q,
        status: 422,
        code: "validation_failed",
      });
    }
  });
});

describe("GET /api/users/{id}", () => {
  it("answers a user, with email only for themself", async () => {
    const other = await call(h.app, "GET", `/api/users/${alice.id}`, { token: bob.token });
    expect(other.status).toBe(200);
    expect(other.body).toMatchObject({ id: alice.id, username: "alice_w", display_name: "Alice Wonder" });
    expect(other.body.email).toBeUndefined();
    const self = await call(h.app, "GET", `/api/users/${alice.id}`, { token: alice.token });
    expect(self.body.email).toBe("alice@example.com");
  });

  it("answers 404 not_found for an unknown id", async () => {
    const res = await call(h.app, "GET", "/api/users/00000000000000000000", { token: bob.token });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });
});

describe("PUT /api/users/{id}", () => {
  it("lets a user edit their own display name, username and status", async () => {
    const user = await signup(h.app);
    const res = await call(h.app, "PUT", `/api/users/${user.id}`, {
      token: user.token,
      body: { display_name: "New Name", username: "New_Handle", status: "dnd" },
    });
    expect(res.status).toBe(200);
    // Not connected: the status is their choice, shown when they connect; everyone sees them offline.
    expect(res.body).toMatchObject({
      display_name: "New Name",
      username: "new_handle",
      status: "offline",
      chosen_status: "dnd",
    });
    h.clock.advance(1000);
    const again = await call(h.app, "PUT", `/api/users/${user.id}`, {
      token: user.token,
      body: { status: "away" },
    });
    expect(again.body).toMatchObject({ status: "offline", chosen_status: "away", username: "new_handle" });
    // A status chosen is presence: updated_at, which anyone may read, stays. A profile change moves it.
    expect(again.body.updated_at).toBe(res.body.updated_at);
    h.clock.advance(1000);
    const renamed = await call(h.app, "PUT", `/api/users/${user.id}`, {
      token: user.token,
      body: { display_name: "Newer Name" },
    });
    expect(Date.parse(renamed.body.updated_at)).toBeGreaterThan(Date.parse(res.body.updated_at));
    // A peer (a dm with alice) sees the status everyone shown it sees, not the choice.
    await call(h.app, "POST", "/api/conversations", {
      token: user.token,
      body: { conversation_type: "dm", participant_ids: [alice.id] },
    });
    const seen = await call(h.app, "GET", `/api/users/${user.id}`, { token: alice.token });
    expect(seen.body.status).toBe("offline");
    expect(seen.body).not.toHaveProperty("chosen_status");
    expect((await call(h.app, "GET", "/api/auth/me", { token: user.token })).body.chosen_status).toBe("away");
  });

  it("answers 403 forbidden to anyone but the user", async () => {
    const res = await call(h.app, "PUT", `/api/users/${alice.id}`, {
      token: bob.token,
      body: { display_name: "x" },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
  });

  it("answers 409 username_taken for a taken username", async () => {
    const res = await call(h.app, "PUT", `/api/users/${bob.id}`, {
      token: bob.token,
      body: { username: "ALICE_W" },
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("username_taken");
  });

  it.each([
    [{ status: "sleeping" }, "status"],
    [{ username: "x" }, "username"],
    [{ display_name: "" }, "display_name"],
    // Blank once trimmed: it was stored as sent, a user shown to everyone with no name.
    [{ display_name: " \t " }, "display_name"],
    // Invisible characters alone (zero-width space and joiner, Hangul filler, braille blank, a control
    // character): a name nobody can see, as blank as spaces.
    [{ display_name: "\u200b\u200d" }, "display_name"],
    [{ display_name: "\u3164" }, "display_name"],
    [{ display_name: " \u2800 \u0001" }, "display_name"],
  ])("refuses %p with 422 naming the field", async (body, field) => {
    const res = await call(h.app, "PUT", `/api/users/${bob.id}`, { token: bob.token, body });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.field).toBe(field);
  });
});

describe("GET /api/users?q= and Unicode", () => {
  it("finds a display name whether its accents were typed composed (NFC) or decomposed (NFD)", async () => {
    // One name as a Mac keyboard may send it (o + combining diaeresis), one composed.
    const zoe = await signup(h.app, { display_name: "Zoe\u0308 Nfdcase" });
    const emil = await signup(h.app, { display_name: "\u00c9milie Nfccase" });
    const found = async (q: string) => {
      const res = await call(h.app, "GET", `/api/users?q=${encodeURIComponent(q)}`, { token: bob.token });
      expect(res.status).toBe(200);
      return res.body.items.map((u: { id: string }) => u.id);
    };
    expect(await found("zo\u00eb nfd")).toEqual([zoe.id]);
    expect(await found("ZO\u00cb")).toEqual([zoe.id]);
    expect(await found("zoe\u0308")).toEqual([zoe.id]);
    expect(await found("\u00e9milie")).toEqual([emil.id]);
    expect(await found("E\u0301MILIE")).toEqual([emil.id]);
    // The name is shown as it was given.
    expect((await call(h.app, "GET", `/api/users/${zoe.id}`, { token: bob.token })).body.display_name).toBe(
      "Zoe\u0308 Nfdcase",
    );
  });
});

describe("an invisible display name at sign-up", () => {
  it("is taken as none given: the user is shown by their username, as with a blank one", async () => {
    const invisible = await signup(h.app, { display_name: "\u200b\u2060" });
    expect(invisible.user.display_name).toBe(invisible.username);
    const visible = await signup(h.app, { display_name: "\u200bAda" });
    expect(visible.user.display_name).toBe("\u200bAda");
  });
});

describe("GET /api/users page size", () => {
  it("answers 20 users by default and at most 100, in username order, the next page after the last", async () => {
    for (let i = 0; i < 21; i++)
      await signup(h.app, { username: `pagesize_${String(i).padStart(2, "0")}`, display_name: `P ${i}` });
    const first = await call(h.app, "GET", "/api/users?q=pagesize_", { token: bob.token });
    const names = (b: { items: { username: string }[] }) => b.items.map((u) => u.username);
    expect(names(first.body)).toEqual(
      Array.from({ length: 20 }, (_, i) => `pagesize_${String(i).padStart(2, "0")}`),
    );
    const rest = await call(h.app, "GET", `/api/users?q=pagesize_&cursor=${first.body.next_cursor}`, {
      token: bob.token,
    });
    expect([names(rest.body), rest.body.next_cursor]).toEqual([["pagesize_20"], null]);
    const all = await call(h.app, "GET", "/api/users?q=pagesize_&limit=100", { token: bob.token });
    expect([all.body.items.length, all.body.next_cursor]).toEqual([21, null]);
  });
});
