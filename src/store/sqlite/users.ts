// Users on SQLite.

import type { Database } from "bun:sqlite";
import { nameKey } from "../../lib/text.ts";
import {
  DuplicateError,
  type UserCondition,
  type UserPatch,
  type UserRecord,
  type UsersRepo,
} from "../types.ts";
import { groupCommit } from "./group-commit.ts";
import { bind } from "./schema.ts";

type Row = UserRecord & { display_name_lower?: string };

const strip = (row: Row | null): UserRecord | null => {
  if (!row) return null;
  const { display_name_lower: _, ...user } = row;
  return user;
};

/** SQLite reports which UNIQUE constraint failed in the message: "UNIQUE constraint failed: users.email". */
function rethrowDuplicate(err: unknown): never {
  const message = err instanceof Error ? err.message : "";
  if (message.includes("users.email")) throw new DuplicateError("email");
  if (message.includes("users.username")) throw new DuplicateError("username");
  throw err;
}

/**
 * The least string above every string that starts with `prefix`, in SQLite's order (UTF-8 bytes, that is
 * code points): the prefix with its last code point raised by one. `prefix + "\uffff"` falls short: "zo🎉"
 * sorts above "zo\uffff" because U+1F389 is above U+FFFF.
 */
function prefixEnd(prefix: string): string {
  const points = Array.from(prefix);
  while (points.length > 0) {
    const last = (points.pop() as string).codePointAt(0) as number;
    if (last < 0x10ffff) {
      const next = last + 1 >= 0xd800 && last + 1 <= 0xdfff ? 0xe000 : last + 1; // no surrogates in UTF-8
      return points.join("") + String.fromCodePoint(next);
    }
  }
  // Only U+10FFFF (a noncharacter) throughout: no string is above them all; this bound misses only names
  // that go on with yet more U+10FFFF.
  return `${prefix}\u{10ffff}`;
}

const CONDITIONS = ["password_hash", "email_verified_at"] as const;

const PATCHABLE = [
  "display_name",
  "username",
  "status",
  "chosen_status",
  "password_hash",
  "email_verified_at",
  "last_seen",
  "role",
  "updated_at",
];

export function sqliteUsers(db: Database): UsersRepo {
  const insert = db.query(
    `INSERT INTO users (id, email, username, display_name, display_name_lower, password_hash,
       email_verified_at, status, chosen_status, role, last_seen, created_at, updated_at)
     VALUES ($id, $email, $username, $display_name, $display_name_lower, $password_hash,
       $email_verified_at, $status, $chosen_status, $role, $last_seen, $created_at, $updated_at)`,
  );
  const byId = db.query<Row, [string]>("SELECT * FROM users WHERE id = ?");
  const byEmail = db.query<Row, [string]>("SELECT * FROM users WHERE email = ?");
  const byUsername = db.query<Row, [string]>("SELECT * FROM users WHERE username = ?");
  const listAll = db.query<Row, { after: string; limit: number }>(
    "SELECT * FROM users WHERE username > $after ORDER BY username LIMIT $limit",
  );
  // The ids go in as one JSON array: one bound value however many there are (one "?" each runs into
  // SQLite's limit on bound variables), and one prepared statement for every call.
  const existing = db.query<{ id: string }, [string]>(
    "SELECT id FROM users WHERE id IN (SELECT value FROM json_each(?))",
  );
  // Prefix match on either column through the indexes: range scans instead of LIKE.
  const listPrefix = db.query<Row, { lo: string; hi: string; after: string; limit: number }>(
    `SELECT * FROM users
     WHERE username > $after AND (
       (username >= $lo AND username < $hi) OR (display_name_lower >= $lo AND display_name_lower < $hi))
     ORDER BY username LIMIT $limit`,
  );

  const offline = db.query<never, [number]>(
    "UPDATE users SET status = 'offline', last_seen = ?1 WHERE status != 'offline'",
  );
  const notOffline = db.query<{ id: string }, []>("SELECT id FROM users WHERE status != 'offline'");

  const apply = ({
    id,
    patch,
    only = {},
  }: {
    id: string;
    patch: UserPatch;
    only?: UserCondition;
  }): UserRecord | null => {
    // A field present but undefined means "leave it": binding it would write NULL.
    const fields = PATCHABLE.filter((f) => patch[f as keyof UserPatch] !== undefined);
    const values: Record<string, string | number | null> = { id };
    const sets = fields.map((f) => {
      values[f] = patch[f as keyof UserPatch] ?? null;
      return `${f} = $${f}`;
    });
    if (patch.display_name !== undefined) {
      sets.push("display_name_lower = $display_name_lower");
      values.display_name_lower = nameKey(patch.display_name);
    }
    // IS, not =: a condition on null holds for a null column.
    const wheres = ["id = $id"];
    for (const f of CONDITIONS) {
      const expected = only[f];
      if (expected === undefined) continue;
      values[`only_${f}`] = expected;
      wheres.push(`${f} IS $only_${f}`);
    }
    // Nothing to write: the record as it is, if it meets the condition.
    if (sets.length === 0)
      return strip(
        db.query<Row, typeof values>(`SELECT * FROM users WHERE ${wheres.join(" AND ")}`).get(values),
      );
    let changes = 0;
    try {
      changes = db
        .query(`UPDATE users SET ${sets.join(", ")} WHERE ${wheres.join(" AND ")}`)
        .run(values).changes;
    } catch (err) {
      rethrowDuplicate(err);
    }
    return changes === 0 ? null : strip(byId.get(id));
  };
  const showChosen = db.query<Row, { id: string; now: number }>(
    `UPDATE users SET status = chosen_status,
       last_seen = CASE WHEN chosen_status = 'offline' THEN $now ELSE last_seen END
     WHERE id = $id AND status != chosen_status RETURNING *`,
  );
  const show = groupCommit(db, ({ id, now }: { id: string; now: number }) =>
    strip(showChosen.get({ id, now })),
  );
  // Group commit (group-commit.ts): a storm of connects and disconnects writes every user's presence;
  // one transaction per turn of the event loop instead of one commit and fsync each.
  const update = groupCommit(db, apply);

  return {
    async create(user) {
      try {
        insert.run(bind({ ...user, display_name_lower: nameKey(user.display_name) }));
      } catch (err) {
        rethrowDuplicate(err);
      }
    },
    async byId(id) {
      return strip(byId.get(id));
    },
    async byEmail(email) {
      return strip(byEmail.get(email));
    },
    async byUsername(username) {
      return strip(byUsername.get(username));
    },
    async existing(ids) {
      if (ids.length === 0) return [];
      return existing.all(JSON.stringify(ids)).map((r) => r.id);
    },
    async update(id, patch: UserPatch, only?: UserCondition) {
      return update({ id, patch, only });
    },
    async showChosen(id, now) {
      return show({ id, now });
    },
    async allOffline(now) {
      return offline.run(now).changes;
    },
    async notOffline() {
      return notOffline.all().map((r) => r.id);
    },
    async list({ prefix = "", afterUsername = "", limit }) {
      const rows =
        prefix === ""
          ? listAll.all({ after: afterUsername, limit })
          : listPrefix.all({ lo: prefix, hi: prefixEnd(prefix), after: afterUsername, limit });
      return rows.map((r) => strip(r) as UserRecord);
    },
  };
}
