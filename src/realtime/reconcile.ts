// After a node has lost Redis for a while, what the others said meanwhile is lost (revocations, membership
// changes): the node looks again, against the store, at every socket it holds. What another node could not
// say while it had lost Redis, it is told once that node is back: it looks again at that alone. (Presence
// after such a loss is attendance.ts's.)

import type { Broker } from "../broker/types.ts";
import { CHUNK, inChunks, nextTurn } from "../lib/chunks.ts";
import { errorText } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import type { SessionCache } from "../modules/auth/session-cache.ts";
import type { MembershipCache } from "../modules/conversations/membership.ts";
import type { Store } from "../store/types.ts";
import type { Connections, Socket } from "./connections.ts";
import { bunTopic, type Fanout, topics } from "./fanout.ts";
import { send } from "./outbox.ts";
import { NODE_WIDE } from "./relay.ts";

/** Times a user whose subscriptions a live change moved during the read is looked at again in one pass. */
const RETRIES = 3;
/** A pass that failed in part is run again after this long, twice as long each time, this many times. */
const RETRY_MS = 1000;
const PASS_RETRIES = 5;
/** Conversations whose last seq is read in one store call when their sockets are told where logs stand. */
const HEADS_PER_READ = 1000;
/** Conversations in one `heads` frame (~40 bytes each: well under any frame limit a client keeps). */
const HEADS_PER_FRAME = 500;

export interface ReconcileDeps {
  connections: Connections;
  fanout: Fanout;
  broker: Broker;
  store: Pick<Store, "sessions" | "conversations">;
  sessions: Pick<SessionCache, "invalidate">;
  membership: Pick<MembershipCache, "forget">;
  logger: Logger;
}

export class Reconciler {
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Passes in a row that had a failure: the next retry waits RETRY_MS times 2 to this power. */
  private failures = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;
  /** A pass over every socket is asked for (run), or one failed and is to be run again. */
  private full = false;
  /** What another node could not say while it had lost Redis: looked at alone (runFor). */
  private scope = emptyScope();

  constructor(private deps: ReconcileDeps) {}

  /** One pass over every socket; asked for during one, another follows it (one, however often asked). */
  run(): Promise<void> {
    // Asked for anew (another reconnect): a retry waiting is not needed, and the retries start again.
    clearTimeout(this.retry);
    this.retry = undefined;
    this.failures = 0;
    this.full = true;
    return this.start();
  }

  /**
   * Another node could not say these while it had lost Redis: the sockets here of the users named, of the
   * members of the conversations named and of those who listen to them are looked at again, and nothing
   * else (a pass over every socket, on every node, each time one node lost Redis for a moment, would read
   * the store once per socket of the cluster).
   */
  runFor(scope: { [K in keyof Scope]: readonly string[] }): Promise<void> {
    addTo(this.scope, scope);
    return this.start();
  }

  private start(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let failed: { err: unknown } | undefined;
      do {
        this.again = false;
        const full = this.full;
        this.full = false;
        const scope = this.scope;
        this.scope = emptyScope();
        // A pass over everything looks at what was asked about too.
        if (full) failed = await this.pass().catch((err: unknown) => ({ err }));
        else if (Object.values(scope).some((ids) => ids.size > 0))
          failed = await this.scopedPass(scope).catch((err: unknown) => ({ err }));
        else failed = undefined;
        // Run again by the retry: whole, or what was asked about.
        if (failed && full) this.full = true;
        else if (failed) addTo(this.scope, scope);
      } while (this.again && !this.stopped);
      if (failed) this.retryLater(failed.err);
      else this.failures = 0;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /**
   * A pass that could not read some of what it needed (the store failing for a moment) is run again, a
   * little later each time, PASS_RETRIES times at most. Said once, and once more if it gives up.
   */
  private retryLater(err: unknown) {
    const { logger } = this.deps;
    if (this.stopped) return;
    if (this.failures >= PASS_RETRIES) {
      logger.warn(
        { err: errorText(err) },
        "broker: reconcile after a reconnect gave up; sockets are checked again at the next reconnect",
      );
      this.failures = 0;
      return;
    }
    const delay = RETRY_MS * 2 ** this.failures;
    if (this.failures === 0)
      logger.warn(
        { err: errorText(err), retry_ms: delay },
        "broker: reconcile after a reconnect failed in part",
      );
    this.failures++;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.start();
    }, delay);
    this.retry.unref?.();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  /**
   * Every stage runs whatever failed before it (a session or a member list the store could not read is
   * no reason to leave the others unchecked); returns the first failure, for a retry of the whole pass.
   */
  private async pass(): Promise<{ err: unknown } | undefined> {
    let failed: { err: unknown } | undefined;
    const note = (err: unknown) => {
      failed ??= { err };
    };
    const sessions = new Map<string, string>();
    const users = new Set<string>();
    for (const ws of this.deps.connections.all) {
      if (ws.data.kind !== "user") continue;
      sessions.set(ws.data.session_id, ws.data.user_id);
      users.add(ws.data.user_id);
    }
    await inChunks([...sessions], ([sessionId, userId]) => this.checkSession(sessionId, userId)).catch(note);
    await this.checkUsers(users, new Set()).catch(note);
    const listened = await this.joinWhatIsListened().catch((err: unknown) => {
      note(err);
      return [];
    });
    // This node may not have heard the others: every conversation its sockets are in may have moved on.
    const conversations = listened.filter((c) => c.startsWith("c:")).map((c) => c.slice(2));
    await this.headsToEverySocket(conversations).catch(note);
    return failed;
  }

  /**
   * runFor's pass: like pass(), over the users the scope names or reaches, and no session; then the
   * sockets of the conversations whose changes were missed are told where their logs stand.
   */
  private async scopedPass(scope: Scope): Promise<{ err: unknown } | undefined> {
    const { connections, store } = this.deps;
    let failed: { err: unknown } | undefined;
    const note = (err: unknown) => {
      failed ??= { err };
    };
    const users = new Set<string>();
    for (const userId of scope.users) if (connections.ofUser(userId).size > 0) users.add(userId);
    if (scope.conversations.size > 0) {
      // Those who listen to them here (removed since, or the conversation deleted), one look per socket...
      for (const ws of connections.all) {
        if (ws.data.kind !== "user" || users.has(ws.data.user_id)) continue;
        for (const topic of conversationTopics(ws))
          if (scope.conversations.has(topic.slice(2))) {
            users.add(ws.data.user_id);
            break;
          }
      }
      // ...and their members with sockets here (added since).
      await inChunks([...scope.conversations], async (id) => {
        for (const p of await store.conversations.participants(id))
          if (connections.ofUser(p.user_id).size > 0) users.add(p.user_id);
      }).catch(note);
    }
    // Forgotten whoever is here: a node's cache may answer for a conversation none of its sockets is in.
    await this.checkUsers(users, new Set(scope.conversations)).catch(note);
    await this.joinWhatIsListened().catch(note);
    await this.headsToListeners([...scope.heads]).catch(note);
    return failed;
  }

  /** The last seq of each of these conversations that exists, read HEADS_PER_READ at a time. */
  private async lastSeqs(ids: readonly string[]): Promise<Map<string, number>> {
    const seqs = new Map<string, number>();
    for (let i = 0; i < ids.length && !this.stopped; i += HEADS_PER_READ) {
      if (i > 0) await nextTurn();
      for (const [id, seq] of await this.deps.store.conversations.lastSeqs(ids.slice(i, i + HEADS_PER_READ)))
        seqs.set(id, seq);
    }
    return seqs;
  }

  /**
   * Another node's changes to these conversations never reached this node (that node had lost Redis): the
   * sockets here that listen to them are told where each log stands (`heads`), and a client behind one
   * resumes it. One up to date does nothing.
   */
  private async headsToListeners(ids: readonly string[]) {
    for (const [id, seq] of await this.lastSeqs(ids))
      this.deps.fanout.tellHere(topics.conversation(id), { type: "heads", conversations: { [id]: seq } });
  }

  /**
   * This node could not hear the others (it had lost Redis): every socket is told where the logs of its
   * conversations stand, in one frame (a frame per conversation would be a write per socket and
   * conversation: millions, on a node of 100,000 sockets in 50 conversations each).
   */
  private async headsToEverySocket(ids: readonly string[]) {
    const seqs = await this.lastSeqs(ids);
    let looked = 0;
    for (const ws of [...this.deps.connections.all]) {
      if (this.stopped) return;
      if (ws.data.kind !== "user") continue;
      let conversations: Record<string, number> = {};
      let entries = 0;
      for (const topic of conversationTopics(ws)) {
        const seq = seqs.get(topic.slice(2));
        if (seq === undefined) continue;
        conversations[topic.slice(2)] = seq;
        if (++entries === HEADS_PER_FRAME) {
          send(ws, { type: "heads", conversations });
          conversations = {};
          entries = 0;
        }
      }
      if (entries > 0) send(ws, { type: "heads", conversations });
      if (++looked % CHUNK === 0) await nextTurn();
    }
  }

  /**
   * The users' sockets here listen to the conversations the store says they are in (see checkMembership);
   * what this node may have been told of those conversations, and of `forget`, is read again after.
   */
  private async checkUsers(users: ReadonlySet<string>, forget: Set<string>): Promise<void> {
    let failed: { err: unknown } | undefined;
    let pending = [...users];
    for (let round = 0; round <= RETRIES && pending.length > 0 && !this.stopped; round++) {
      const moved: string[] = [];
      // A user whose read failed is not looked at again in this pass: the retry does.
      await inChunks(pending, async (userId) => {
        if (!(await this.checkMembership(userId, forget))) moved.push(userId);
      }).catch((err: unknown) => {
        failed ??= { err };
      });
      pending = moved;
    }
    // What a member of this node may have been told of these conversations (roles too) is read again.
    for (const id of forget) this.deps.membership.forget(id);
    if (failed) throw failed.err;
  }

  /** A session revoked while Redis was down closes its sockets here too (4501). */
  private async checkSession(sessionId: string, userId: string) {
    if (this.stopped) return;
    const { store, sessions } = this.deps;
    const s = await store.sessions.byId(sessionId);
    // As if another node had said so: the gateway closes its sockets, and nobody is told again. (A session
    // that ended by its age needs no look: its sockets hold its end and the gateway's sweep closes them.)
    if (!s || s.user_id !== userId || s.revoked_at !== null) sessions.invalidate([sessionId], "elsewhere");
  }

  /**
   * The user's sockets here listen to exactly the conversations the store says they are in: out of those
   * they were removed from, into those they were added to. False when a live change moved a socket's
   * topics during the read (what the store said may be older than it): the user is looked at again.
   */
  private async checkMembership(userId: string, seen: Set<string>): Promise<boolean> {
    const { connections, store, fanout } = this.deps;
    const before = new Map<Socket, { moves: number; topics: Set<string> }>();
    for (const ws of connections.ofUser(userId))
      before.set(ws, { moves: ws.data.moves, topics: conversationTopics(ws) });
    if (before.size === 0 || this.stopped) return true;
    const wanted = new Set((await store.conversations.idsForUser(userId)).map(topics.conversation));
    let settled = true;
    for (const [ws, was] of before) {
      if (!connections.all.has(ws)) continue;
      if (ws.data.moves !== was.moves) {
        settled = false;
        continue;
      }
      for (const topic of was.topics) {
        seen.add(topic.slice(2));
        if (!wanted.has(topic)) fanout.unsubscribe(ws, topic);
      }
      for (const topic of wanted) {
        seen.add(topic.slice(2));
        // The node joins its channel with the others (joinWhatIsListened).
        if (!was.topics.has(topic)) ws.subscribe(bunTopic(topic, ws.data.encoding));
      }
    }
    return settled;
  }

  /**
   * The node's channels in Redis are what its sockets listen to: the missing ones are joined (a join that
   * failed while Redis was down), and those nobody listens to any more left. Answers those channels.
   */
  private async joinWhatIsListened(): Promise<string[]> {
    const { broker, connections, fanout } = this.deps;
    if (!broker.shared || this.stopped) return [];
    const needed = new Set<string>([NODE_WIDE]);
    let looked = 0;
    for (const ws of connections.all) {
      for (const topic of ws.subscriptions) needed.add(logical(topic));
      if (++looked % CHUNK === 0) await nextTurn();
    }
    fanout.leaveIdle();
    const missing = [...needed].filter((channel) => !broker.joined.has(channel));
    if (missing.length > 0) await broker.join(missing);
    return [...needed];
  }
}

/**
 * What another node could not say: conversations whose members changed, users who joined or left one, and
 * conversations whose changes did not reach this node's sockets.
 */
interface Scope {
  conversations: Set<string>;
  users: Set<string>;
  heads: Set<string>;
}

const emptyScope = (): Scope => ({ conversations: new Set(), users: new Set(), heads: new Set() });

function addTo(scope: Scope, more: { [K in keyof Scope]: Iterable<string> }) {
  for (const key of Object.keys(scope) as (keyof Scope)[]) for (const id of more[key]) scope[key].add(id);
}

/** The logical topic of a Bun one (`c:<id>|<encoding tag>`). */
function logical(topic: string): string {
  const bar = topic.lastIndexOf("|");
  return bar < 0 ? topic : topic.slice(0, bar);
}

/** The conversation topics a socket listens to. */
function conversationTopics(ws: Socket): Set<string> {
  const out = new Set<string>();
  for (const topic of ws.subscriptions) if (topic.startsWith("c:")) out.add(logical(topic));
  return out;
}
