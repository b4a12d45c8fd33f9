// The client key is stored in every message row: these values must never change (client-key.ts).

import { describe, expect, it } from "bun:test";
import { clientKey, cyrb53 } from "../../src/store/sqlite/client-key.ts";

describe("client keys", () => {
  it("hashes as the published cyrb53 does", () => {
    expect(cyrb53("a")).toBe(7929297801672961);
    expect(cyrb53("b")).toBe(8684336938537663);
    expect(cyrb53("revenge")).toBe(4051478007546757);
    expect(cyrb53("revenue")).toBe(8309097637345594);
  });

  it("files a pair under the same key as every earlier version did", () => {
    expect(clientKey("u-alice", "cm-1")).toBe(3303963415261824);
    expect(clientKey("01jd0000000000000000", "3b241101-e2bb-4255-8caf-4136c566a962")).toBe(7366481360779944);
  });

  it("keeps the sender and the client id apart, and stays a safe integer", () => {
    expect(clientKey("u-bob", "cm-1")).not.toBe(clientKey("u-alice", "cm-1"));
    // The separator: "ab" + "c" is not "a" + "bc".
    expect(clientKey("ab", "c")).not.toBe(clientKey("a", "bc"));
    for (const id of ["", "x", "é", "😀", "a".repeat(200)]) {
      const key = clientKey("u-alice", id);
      expect(Number.isSafeInteger(key) && key >= 0).toBe(true);
    }
  });
});
