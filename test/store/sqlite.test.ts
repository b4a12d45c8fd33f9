// The SQLite adapter: the shared contract in memory and on a real file, plus what only a file can show.

import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/store/sqlite/index.ts";
import { storeContract } from "./contract.ts";
import { conversationsContract } from "./conversations-contract.ts";

const dir = mkdtempSync(join(tmpdir(), "parley-store-"));
let files = 0;
const freshFile = () => join(dir, `store-${++files}.db`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract("sqlite store (memory)", async () => openSqliteStore(":memory:"));
storeContract("sqlite store (file)", async () => openSqliteStore(freshFile()));
conversationsContract("sqlite conversations (memory)", async () => openSqliteStore(":memory:"));
conversationsContract("sqlite conversations (file)", async () => openSqliteStore(freshFile()));

describe("sqlite store on a file", () => {
  it("keeps its data when the file is opened again", async () => {
    const path = freshFile();
    const first = openSqliteStore(path);
    await first.sessions.create({
      id: "s-1",
      user_id: "u-1",
      device_name: "laptop",
      user_agent: "bun-test",
      ip: "127.0.0.1",
      created_at: 1,
      last_seen_at: 1,
      expires_at: 2,
      revoked_at: null,
    });
    await first.close();
    const second = openSqliteStore(path);
    try {
      expect((await second.sessions.byId("s-1"))?.device_name).toBe("laptop");
    } finally {
      await second.close();
    }
  });
});
