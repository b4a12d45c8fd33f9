// The Redis side of presence across nodes: Lua scripts that count a user's sockets per node, hand out each
// offline write to one node, and sweep the nodes that died. Each runs atomically in Redis.

import type { Redis } from "ioredis";

// The scripts reach keys they are not given in KEYS (every node's heartbeat): fine on one Redis, not on a
// Redis Cluster. Keys under the prefix: node:<id> (heartbeat: "1", or "0" once a count has made it again
// after it expired, for the node's next beat to put back the rest of its share), nodes (every node id),
// node-users:<id> (the users with sockets on that node), sockets:<user> (node id -> sockets),
// offline:<user> (the id of the node that claimed the user's offline write after their last socket
// closed; cleared by their next socket), owed:<id> (the users whose offline write that node claimed and
// has not said it wrote: a sweep of it, should it die first, hands them on), kept (made by the first node
// to find it missing: without it, Redis has lost the rest, see RedisBroker.checkKept).
const PRELUDE = `
local function liveTotal(prefix, key)
  local total = 0
  local fields = redis.call("HGETALL", key)
  for i = 1, #fields, 2 do
    if redis.call("EXISTS", prefix .. "node:" .. fields[i]) == 1 then
      total = total + tonumber(fields[i + 1])
    else
      redis.call("HDEL", key, fields[i])
    end
  end
  return total
end
-- The user's offline write is the node's to make: marked so (until their next socket), and listed as owed
-- by it until it says it wrote it.
local function claim(prefix, user, node, ttl)
  redis.call("SET", prefix .. "offline:" .. user, node, "PX", ttl)
  redis.call("SADD", prefix .. "owed:" .. node, user)
end
`;

// ARGV = prefix, node id, user id, delta (-1, 0 or 1), node ttl (ms), "1" when a total of 0 will make the
// caller write the user offline. Returns the user's sockets on every live node; fields of nodes without a
// heartbeat are dropped.
const COUNT_SCRIPT = `${PRELUDE}
local prefix, node, user = ARGV[1], ARGV[2], ARGV[3]
local offline = prefix .. "offline:" .. user
if tonumber(ARGV[4]) > 0 then
  local claimer = redis.call("GET", offline)
  if claimer then
    redis.call("SREM", prefix .. "owed:" .. claimer, user)
    redis.call("DEL", offline)
  end
end
local beat = prefix .. "node:" .. node
if redis.call("PEXPIRE", beat, ARGV[5]) == 0 then redis.call("SET", beat, "0", "PX", ARGV[5]) end
redis.call("SADD", prefix .. "nodes", node)
local key = prefix .. "sockets:" .. user
local mine = redis.call("HINCRBY", key, node, ARGV[4])
if mine <= 0 then
  redis.call("HDEL", key, node)
  redis.call("SREM", prefix .. "node-users:" .. node, user)
else
  redis.call("SADD", prefix .. "node-users:" .. node, user)
end
local total = liveTotal(prefix, key)
if total == 0 and ARGV[6] == "1" then claim(prefix, user, node, ARGV[5]) end
return total
`;

// ARGV = prefix, node id, claim ttl (ms), user ids. The users with no socket on any live node whose offline
// write nobody else has claimed since their last socket closed: each is returned to one node (the claim).
// A claim the caller holds already is returned to it again: it asks only about users it could not hear
// of, and the reply that gave it that claim (a count's, or a settle's) may have been lost with the
// connection. A second offline write is harmless; a user with a socket since then has no claim left.
const SETTLE_SCRIPT = `${PRELUDE}
local prefix, node = ARGV[1], ARGV[2]
local gone = {}
for i = 4, #ARGV do
  local user = ARGV[i]
  local claimer = redis.call("GET", prefix .. "offline:" .. user)
  if liveTotal(prefix, prefix .. "sockets:" .. user) == 0 and (not claimer or claimer == node) then
    claim(prefix, user, node, ARGV[3])
    table.insert(gone, user)
  end
end
return gone
`;

// ARGV = prefix, the node id to sweep, the sweeper's id, claim ttl (ms). A node whose heartbeat is gone: its
// fields leave every hash of its users, and the users left with no socket on any live node are returned,
// once (the script is atomic and forgets the node, so a second sweeper finds nothing), with the users
// whose offline write it had claimed and not written (no socket since, nobody else's claim since). Each
// is claimed for the sweeper, which may die too. A node that is alive is left alone.
const SWEEP_SCRIPT = `${PRELUDE}
local prefix, dead, node = ARGV[1], ARGV[2], ARGV[3]
if redis.call("EXISTS", prefix .. "node:" .. dead) == 1 then return {} end
local gone, seen = {}, {}
local function hand(user)
  if seen[user] then return end
  seen[user] = true
  claim(prefix, user, node, ARGV[4])
  table.insert(gone, user)
end
for _, user in ipairs(redis.call("SMEMBERS", prefix .. "node-users:" .. dead)) do
  local key = prefix .. "sockets:" .. user
  redis.call("HDEL", key, dead)
  if liveTotal(prefix, key) == 0 then hand(user) end
end
for _, user in ipairs(redis.call("SMEMBERS", prefix .. "owed:" .. dead)) do
  local claimer = redis.call("GET", prefix .. "offline:" .. user)
  if (not claimer or claimer == dead) and liveTotal(prefix, prefix .. "sockets:" .. user) == 0 then
    hand(user)
  end
end
redis.call("DEL", prefix .. "node-users:" .. dead, prefix .. "owed:" .. dead)
redis.call("SREM", prefix .. "nodes", dead)
return gone
`;
// KEYS = the node's heartbeat; ARGV = node ttl (ms). 1 when the heartbeat was still the one this node last
// put back (renewed now); 0 when it had expired, even if a count has made it again since.
export const BEAT_SCRIPT = `
if redis.call("PEXPIRE", KEYS[1], ARGV[1]) == 1 and redis.call("GET", KEYS[1]) == "1" then return 1 end
return 0
`;
// KEYS = the node's heartbeat, its users, every node, its owed offline writes; ARGV = its id. A node closing:
// no heartbeat, and off the list when it holds no user and owes no write (else the sweep that hands them on
// needs it there).
export const LEAVE_SCRIPT = `
redis.call("DEL", KEYS[1])
if redis.call("SCARD", KEYS[2]) == 0 and redis.call("SCARD", KEYS[4]) == 0 then
  redis.call("SREM", KEYS[3], ARGV[1])
end
`;
export const COUNT = "parleyCountSockets";
export const SWEEP = "parleySweepNode";
export const SETTLE = "parleySettle";

export type ScriptedRedis = Redis & {
  [COUNT](
    prefix: string,
    node: string,
    user: string,
    delta: number,
    ttl: number,
    claim: string,
  ): Promise<unknown>;
  [SWEEP](prefix: string, dead: string, node: string, ttl: number): Promise<unknown>;
  [SETTLE](prefix: string, node: string, ttl: number, ...users: string[]): Promise<unknown>;
};

/** The connection with the count, settle and sweep scripts defined as commands of its own. */
export function withScripts(redis: Redis): ScriptedRedis {
  redis.defineCommand(COUNT, { numberOfKeys: 0, lua: COUNT_SCRIPT });
  redis.defineCommand(SWEEP, { numberOfKeys: 0, lua: SWEEP_SCRIPT });
  redis.defineCommand(SETTLE, { numberOfKeys: 0, lua: SETTLE_SCRIPT });
  return redis as ScriptedRedis;
}
