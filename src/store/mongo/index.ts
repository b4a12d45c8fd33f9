// The production store: MongoDB through the official driver. Indexes are created at boot; every
// check-and-set (spending a refresh token, consuming a magic link) is one atomic findOneAndUpdate.

import { type Db, MongoClient, MongoServerSelectionError } from "mongodb";
import { ConfigError } from "../../config.ts";
import type { Store } from "../types.ts";
import { mongoAuthRepos } from "./auth.ts";
import { mongoConversations } from "./conversations.ts";
import { mongoMessages, type Transactions } from "./messages.ts";
import { collections, createIndexes, upgrade } from "./schema.ts";
import { mongoSessionRepos } from "./sessions.ts";
import { mongoUsers } from "./users.ts";

/** A driver message with any user:password in a connection string it quotes left out. */
const withoutCredentials = (message: string) => message.replace(/\/\/[^/@\s]*@/g, "//…@");

export interface MongoStoreOptions {
  /**
   * Refuse a server without transactions (a standalone one): production's appends must land in seq
   * order and a racing resend must not take a seq, which only transactions give (a one-member replica
   * set will do).
   */
  requireTransactions?: boolean;
  /** Told which kind of server this is, once connected. */
  onMode?: (mode: "transactions" | "standalone") => void;
}

/**
 * Connects to `url`, uses the database `dbName` and makes sure its indexes exist. A connection string the
 * driver does not take, or a server that does not answer within the driver's server selection timeout
 * (30 s, or `serverSelectionTimeoutMS` in the URL), is a ConfigError naming MONGODB_URL.
 */
export async function openMongoStore(
  url: string,
  dbName: string,
  options: MongoStoreOptions = {},
): Promise<Store> {
  if (dbName === "") throw new Error("openMongoStore: dbName must not be empty");
  let client: MongoClient;
  try {
    client = new MongoClient(url, { appName: "parley" });
  } catch (err) {
    // The constructor only reads the string (MongoParseError, or another error for a bad host).
    throw new ConfigError(
      `MONGODB_URL: ${withoutCredentials(err instanceof Error ? err.message : String(err))}`,
    );
  }
  try {
    try {
      await client.connect();
    } catch (err) {
      if (err instanceof MongoServerSelectionError)
        throw new ConfigError(`MONGODB_URL: no server answered (${withoutCredentials(err.message)})`);
      throw err;
    }
    const db = client.db(dbName);
    const c = collections(db);
    const tx = await transactions(client, db);
    options.onMode?.(tx.supported ? "transactions" : "standalone");
    if (!tx.supported && options.requireTransactions) {
      throw new ConfigError(
        "MONGODB_URL: a standalone MongoDB server has no transactions, which production needs " +
          "(appends in seq order, one seq per message); run it as a replica set (one member will do)",
      );
    }
    await createIndexes(c);
    await upgrade(c);
    const { sessions, refreshTokens } = mongoSessionRepos(c);
    const { magicLinks, emailVerifications, lockouts } = mongoAuthRepos(c);
    return {
      kind: "mongo",
      users: mongoUsers(c),
      sessions,
      refreshTokens,
      magicLinks,
      emailVerifications,
      lockouts,
      conversations: mongoConversations(c, tx),
      messages: mongoMessages(c, tx),
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
async function transactions(client: MongoClient, db: Db): Promise<Transactions & { supported: boolean }> {
  const hello = await db.admin().command({ hello: 1 });
  const supported = typeof hello.setName === "string" || hello.msg === "isdbgrid";
  if (!supported) return { supported, run: (work) => work(undefined) };
  return {
    supported,
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
