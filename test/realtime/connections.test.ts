// The node's socket registry: lookups per user and session, and the count per encoding that lets the
// fanout skip an encoding nobody on this node speaks.

import { expect, it } from "bun:test";
import { Connections, type Socket } from "../../src/realtime/connections.ts";
import type { Encoding } from "../../src/realtime/protocol.ts";

const sock = (user: string, session: string, encoding: Encoding, kind: "user" | "public" = "user", ip = "") =>
  ({ data: { kind, user_id: user, session_id: session, encoding, ip } }) as unknown as Socket;

it("counts sockets per encoding, once each, and back to zero when they leave", () => {
  const c = new Connections();
  const a = sock("alice", "s1", "msgpack");
  const b = sock("bob", "s2", "json");
  const p = sock("", "", "json", "public");
  c.add(a);
  c.add(a);
  c.add(b);
  c.add(p);
  expect(c.speaking("msgpack")).toBe(1);
  expect(c.speaking("json")).toBe(2);
  c.remove(b);
  c.remove(b);
  expect(c.speaking("json")).toBe(1);
  c.remove(p);
  c.remove(a);
  expect(c.speaking("json")).toBe(0);
  expect(c.speaking("msgpack")).toBe(0);
  c.add(b);
  expect(c.speaking("json")).toBe(1);
});

it("finds a user's and a session's sockets, and forgets them as they leave", () => {
  const c = new Connections();
  const a1 = sock("alice", "s1", "msgpack");
  const a2 = sock("alice", "s2", "json");
  c.add(a1);
  c.add(a2);
  expect([...c.ofUser("alice")]).toEqual([a1, a2]);
  expect([...c.ofSession("s2")]).toEqual([a2]);
  c.remove(a1);
  expect([...c.ofUser("alice")]).toEqual([a2]);
  c.remove(a2);
  expect(c.ofUser("alice").size).toBe(0);
  expect(c.ofSession("s1").size).toBe(0);
});

it("counts public sockets per client address, once each, and forgets an address with none left", () => {
  const c = new Connections();
  const pub = (ip: string) => sock("", "", "json", "public", ip);
  const [a1, a2, b1] = [pub("10.0.0.1"), pub("10.0.0.1"), pub("10.0.0.2")];
  c.add(a1);
  c.add(a1);
  c.add(a2);
  c.add(b1);
  c.add(sock("alice", "s1", "msgpack"));
  expect(c.publicFrom("10.0.0.1")).toBe(2);
  expect(c.publicFrom("10.0.0.2")).toBe(1);
  expect(c.publicFrom("10.0.0.3")).toBe(0);
  c.remove(a1);
  c.remove(a1);
  expect(c.publicFrom("10.0.0.1")).toBe(1);
  c.remove(a2);
  c.remove(b1);
  expect(c.publicFrom("10.0.0.1")).toBe(0);
  expect(c.all.size).toBe(1);
});
