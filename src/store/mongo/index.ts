// The production store: MongoDB through the official driver. Indexes are created at boot; every
// check-and-set (spending a refresh token, consuming a magic link) is one atomic findOneAndUpdate.

import { type Db, MongoClient } from "mongodb";
import type { Store } from "../types.ts";
import { mongoAuthRepos } from "./auth.ts";
import { mongoConversations } from "./conversations.ts";
import { mongoMessages, type Transactions } from "./messages.ts";
import { collections, createIndexes } from "./schema.ts";
import { mongoSessionRepos } from "./sessions.ts";
import { mongoUsers } from "./users.ts";

/** Connects to `url`, uses the database `dbName` and makes sure its indexes exist. */
export async function openMongoStore(url: string, dbName: string): Promise<Store> {
  if (dbName === "") throw new Error("openMongoStore: dbName must not be empty");
  const client = new MongoClient(url, { appName: "parley" });
  try {
    await client.connect();
    const db = client.db(dbName);
    const c = collections(db);
    await createIndexes(c);
    const { sessions, refreshTokens } = mongoSessionRepos(c);
    const { magicLinks, lockouts } = mongoAuthRepos(c);
    return {
      kind: "mongo",
      users: mongoUsers(c),
      sessions,
      refreshTokens,
      magicLinks,
      lockouts,
      conversations: mongoConversations(c),
      messages: mongoMessages(c, await transactions(client, db)),
      async ping() {
        await db.command({ ping: 1 });
      },
      async close() {
        await client.close();
      },
    };
  } catch (err) {
    await client.close();
    throw err;
  }
}

/**
 * Transactions exist on replica sets and sharded clusters, not on a standalone server: the `hello`
 * answer tells which (setName for a replica set member, msg "isdbgrid" for mongos).
 */
async function transactions(client: MongoClient, db: Db): Promise<Transactions> {
  const hello = await db.admin().command({ hello: 1 });
  const supported = typeof hello.setName === "string" || hello.msg === "isdbgrid";
  if (!supported) return { run: (work) => work(undefined) };
  return {
    async run(work) {
      const session = client.startSession();
      try {
        return await session.withTransaction(() => work(session), {
          readConcern: { level: "snapshot" },
          writeConcern: { w: "majority" },
        });
      } finally {
        await session.endSession();
      }
    },
  };
}
