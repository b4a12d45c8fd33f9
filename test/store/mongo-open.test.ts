// Opening the MongoDB store where no server is needed to see it refuse: a string the driver does not
// take, and a server that does not answer. Both are a ConfigError naming MONGODB_URL, without the
// string's password, which the entry turns into exit 78 with one line instead of a stack.

import { expect, it } from "bun:test";
import { ConfigError } from "../../src/config.ts";
import { openMongoStore } from "../../src/store/mongo/index.ts";

async function refusal(url: string): Promise<unknown> {
  return openMongoStore(url, "parley_never").then(
    async (store) => {
      await store.close();
      throw new Error(`opened ${url}`);
    },
    (err: unknown) => err,
  );
}

it("refuses a connection string the driver does not take, without its password", async () => {
  const err = await refusal("mongodb://user:hunter2@h1:27017,h2:notaport/parley");
  expect(err).toBeInstanceOf(ConfigError);
  expect(String(err)).toContain("MONGODB_URL");
  expect(String(err)).not.toContain("hunter2");
});

it("refuses a server that does not answer within the selection timeout", async () => {
  // Port 9 (discard) has no listener here: the driver gives up after the timeout the string sets.
  const err = await refusal("mongodb://user:hunter2@127.0.0.1:9/?serverSelectionTimeoutMS=300");
  expect(err).toBeInstanceOf(ConfigError);
  expect(String(err)).toContain("MONGODB_URL: no server answered");
  expect(String(err)).not.toContain("hunter2");
});
