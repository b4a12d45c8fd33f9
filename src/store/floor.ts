// The two lowest delivered and read positions of a conversation's members (PositionFloor): from the rows
// an adapter read (each adapter finds them in its indexes), or from every member's positions where those
// are at hand already.

import type { MemberPosition, PositionFloor } from "./types.ts";

/** Position order: lowest seq first, ties by user id (as the stores' indexes order them). */
const byPosition = (a: MemberPosition, b: MemberPosition) =>
  a.seq - b.seq || (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0);

/** An adapter's rows (at most two of each kind), in order whatever order they came in. */
export function floorFrom(rows: Iterable<{ read: boolean | number; user_id: string; seq: number }>) {
  const floor: PositionFloor = { delivered: [], read: [] };
  for (const { read, user_id, seq } of rows) (read ? floor.read : floor.delivered).push({ user_id, seq });
  floor.delivered.sort(byPosition);
  floor.read.sort(byPosition);
  return floor;
}

/** Keeps `p` if it is among the two lowest of `two` (sorted, at most two). */
function keepLowest(two: MemberPosition[], p: MemberPosition) {
  if (two.length === 2 && byPosition(p, two[1] as MemberPosition) >= 0) return;
  if (two.length === 2) two.pop();
  if (two.length === 1 && byPosition(p, two[0] as MemberPosition) < 0) two.unshift(p);
  else two.push(p);
}

/** The floor of every member's positions, in one pass. */
export function floorOf(
  members: Iterable<{ user_id: string; delivered_seq: number; last_read_seq: number }>,
): PositionFloor {
  const floor: PositionFloor = { delivered: [], read: [] };
  for (const m of members) {
    keepLowest(floor.delivered, { user_id: m.user_id, seq: m.delivered_seq });
    keepLowest(floor.read, { user_id: m.user_id, seq: m.last_read_seq });
  }
  return floor;
}
