// A database file as an older Parley left it: migrated up to a given schema version only.

import { Database } from "bun:sqlite";
import { applyMigration, MIGRATIONS } from "../../src/store/sqlite/schema.ts";

/** Opens `path` with the first `version` migrations applied and user_version set to match. */
export function databaseAt(path: string, version: number): Database {
  const db = new Database(path, { strict: true });
  for (const [v, migration] of MIGRATIONS.slice(0, version).entries()) {
    applyMigration(db, migration);
    db.exec(`PRAGMA user_version = ${v + 1}`);
  }
  return db;
}
