// Catching a realtime connection's conversations up: a resume from the last seq seen after every hello
// (in chunks the server takes), the REST catch-up a `resync` asks for, and where a conversation we were
// added to starts (the reconnect's list of conversations, or a REST lookup for one first heard of through
// a live event). Catchup (catchup.ts) puts what comes back in order.

import type { ServerFrame } from "../realtime/frames.ts";
import { Catchup, replayedEvent } from "./catchup.ts";
import { ParleyError } from "./errors.ts";
import type { RealtimeEventMap, RealtimeEventType } from "./events.ts";
import type { Link } from "./link.ts";
import type { Receipts } from "./receipts.ts";
import type { RestClient } from "./rest.ts";
import type { Sender } from "./sender.ts";
import type { ConversationView } from "./types.ts";

/** Entries per resume frame, well under the server's 1000 and its frame size limit. */
const RESUME_CHUNK = 500;
/**
 * Resume frames awaiting their answers at once, at most (fewer if the server's burst is smaller): the
 * server holds a socket to WS_RATE_BURST of them and refuses one more, which would end this socket and
 * start every resume again, for a user in tens of thousands of conversations at every reconnect.
 */
const RESUMES_IN_HAND = 8;
const CATCHUP_PAGE = 500;

export class Resumes {
  readonly catchup: Catchup;
  /** ref of a resume frame -> its conversations still waiting for resumed / resync / error, in order. */
  private batches = new Map<number, string[]>();
  /** Chunks of conversations to resume, waiting for fewer resumes in hand (RESUMES_IN_HAND). */
  private queued: string[][] = [];
  /** A socket of this connection has said hello before: we have been away since. */
  private returning = false;
  /**
   * Conversations a hole in their live events (or a `heads` entry past our position) asks to resume, sent
   * as one frame at the end of the turn: a node back from a Redis outage tells where every conversation
   * stands at once, and a resume frame each would take the server's frame rate (20 a second by default)
   * to let through.
   */
  private holes = new Set<string>();
  private holesTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Conversations whose next resume also asks where their receipts stand: all of them after a hello (we
   * were away, or have just started), those we find we were added to, and those a `heads` frame names
   * (live frames of theirs were lost between nodes). Not those resumed to fill a hole in their live events:
   * a change held up on its way from another node loses no receipt.
   */
  private askReceipts = new Set<string>();

  constructor(
    private userId: string,
    private rest: RestClient | undefined,
    private link: Link,
    private sender: Sender,
    private receipts: Receipts,
    private emit: <K extends RealtimeEventType>(type: K, payload: RealtimeEventMap[K]) => void,
  ) {
    this.catchup = new Catchup(
      userId,
      (event) => this.emit("event", event),
      (id) => this.soon(id),
      (id) => {
        this.askReceipts.add(id);
        void this.locate(id);
      },
      (id, tracked) => {
        this.askReceipts.delete(id);
        receipts.forget(id);
        if (tracked) this.emit("gone", { conversation_id: id });
      },
    );
  }

  /**
   * After a hello: every conversation we know resumes from its position. After any hello but the
   * connection's first (a reconnect, or a connect() after close()), those we were added to while away are
   * found too: their changes were sent to no socket of ours, and nothing else would tell us of them.
   */
  hello() {
    const known = [...this.catchup.positions.keys()];
    for (const id of known) this.askReceipts.add(id);
    this.from(known);
    if (this.returning) void this.discover();
    this.returning = true;
  }

  /** The socket is gone, and its resumes and catch-ups with it: the next resume starts them again. */
  left() {
    this.catchup.abandon();
    this.batches.clear();
    this.queued = [];
    // The next hello resumes every conversation.
    this.holes.clear();
    clearTimeout(this.holesTimer);
    this.holesTimer = undefined;
  }

  /**
   * The conversations we were added to while away are resumed from where we were added (their first
   * members, from their start).
   */
  private async discover() {
    const rest = this.rest;
    const socket = this.link.socket;
    if (!rest) return;
    let list: ConversationView[];
    try {
      list = await rest.conversations.all();
    } catch {
      // The next live event in one of them starts its catch-up all the same.
      return;
    }
    if (this.link.socket !== socket || !this.link.connected) return;
    const known = this.catchup.positions;
    const fresh = list.filter((c) => !known.has(c.id) && !this.catchup.isResuming(c.id));
    for (const c of fresh) {
      this.catchup.join(c.id, this.joinedSeq(c));
      this.askReceipts.add(c.id);
    }
    if (fresh.length > 0) this.from(fresh.map((c) => c.id));
  }

  /**
   * A `heads` entry: where the conversation's log stands after live frames may have been lost between
   * nodes. Behind it, or not knowing it, we resume it, and ask where its receipts stand too.
   */
  head(conversationId: string, seq: number) {
    this.askReceipts.add(conversationId);
    this.catchup.head(conversationId, seq);
  }

  /** A `resumed` frame: that conversation is caught up. */
  resumed(frame: Extract<ServerFrame, { type: "resumed" }>) {
    this.done(frame.ref, frame.conversation_id);
    this.catchup.rewind(frame.conversation_id, frame.seq);
    this.catchup.finish(frame.conversation_id, frame.seq);
    this.emit("resumed", { conversation_id: frame.conversation_id, seq: frame.seq });
  }

  /** A `resync` frame: too much to replay over the socket, so that conversation is caught up over REST. */
  resync(frame: Extract<ServerFrame, { type: "resync" }>) {
    this.done(frame.ref, frame.conversation_id);
    void this.fetch(frame.conversation_id);
  }

  /**
   * An error frame that answers no request: true when it answers a resume. Conversations it names we are
   * no longer in, and are forgotten; a resume refused as a whole (rate limited, say) is told, and the
   * socket left: its conversations hold their live events until it is made again, which a reconnect does.
   */
  refused(frame: Extract<ServerFrame, { type: "error" }>): boolean {
    const batch = typeof frame.ref === "number" ? this.batches.get(frame.ref) : undefined;
    if (!batch) return false;
    if (frame.conversation_ids) {
      for (const id of frame.conversation_ids) {
        this.done(frame.ref, id);
        this.catchup.forget(id);
      }
      return true;
    }
    this.emit("error", new ParleyError(frame.code, frame.message));
    this.link.socket?.close(4000, "resume failed");
    return true;
  }

  /**
   * A live event in a conversation we have no position for, other than the one that added us: where we
   * were added is asked for over REST, and the conversation resumed from there (its events wait). Without
   * a REST client there is no asking: it is resumed from its start.
   */
  private async locate(conversationId: string) {
    const rest = this.rest;
    const socket = this.link.socket;
    if (!rest) return this.from([conversationId]);
    let joined: number;
    try {
      joined = this.joinedSeq(await rest.conversations.get(conversationId));
    } catch (err) {
      if (!(err instanceof ParleyError && err.code === "not_found")) return this.failed(err, socket);
      // Not a member any more (removed, or it is gone): there is nothing of it to deliver.
      if (this.link.socket === socket) this.catchup.forget(conversationId);
      return;
    }
    if (this.link.socket !== socket || !this.catchup.isResuming(conversationId)) return;
    this.catchup.join(conversationId, joined);
    this.soon(conversationId);
  }

  /** Where our part of the conversation's log starts (0, its start, from a server that does not say). */
  private joinedSeq(conversation: ConversationView): number {
    return conversation.participants.find((p) => p.user_id === this.userId)?.joined_seq ?? 0;
  }

  /** Resumes the conversation at the end of the turn, with the others asked for in it. */
  private soon(conversationId: string) {
    this.holes.add(conversationId);
    this.holesTimer ??= setTimeout(() => {
      this.holesTimer = undefined;
      // One finished or forgotten meanwhile (removed from it) needs none.
      const ids = [...this.holes].filter((id) => this.catchup.isResuming(id));
      this.holes.clear();
      if (ids.length > 0) this.from(ids);
    }, 0);
  }

  /** Resumes these conversations from their positions (their live events wait meanwhile). */
  private from(ids: string[]) {
    // Their live events are held from now on, while they wait their turn as while their resume is out.
    for (const id of ids) this.catchup.begin(id);
    for (let i = 0; i < ids.length; i += RESUME_CHUNK) this.queued.push(ids.slice(i, i + RESUME_CHUNK));
    this.pump();
  }

  /** Sends the chunks waiting while fewer than RESUMES_IN_HAND resumes await their answers. */
  private pump() {
    const most = Math.min(RESUMES_IN_HAND, this.sender.burst);
    while (this.batches.size < most) {
      const ids = this.queued.shift();
      if (!ids) return;
      // One finished or forgotten while it waited (removed from it) needs none.
      const wanted = ids.filter((id) => this.catchup.isResuming(id));
      if (wanted.length > 0) this.send(wanted);
    }
  }

  /** One resume frame, or two of half as many conversations each when it would be over the frame limit. */
  private send(ids: string[]) {
    const ref = this.sender.ref();
    const positions: Record<string, number> = {};
    const receipts: Record<string, number | null> = {};
    for (const id of ids) {
      positions[id] = this.catchup.asking(id);
      if (this.askReceipts.has(id)) receipts[id] = this.receipts.held(id);
    }
    this.batches.set(ref, ids);
    const frame = {
      type: "resume",
      ref,
      positions,
      ...(Object.keys(receipts).length > 0 ? { receipts } : {}),
    };
    if (this.sender.transmit(frame) !== "too_large" || ids.length < 2) {
      for (const id of Object.keys(receipts)) this.askReceipts.delete(id);
      return;
    }
    this.batches.delete(ref);
    const half = Math.ceil(ids.length / 2);
    // The second half waits its turn, first in line.
    this.queued.unshift(ids.slice(half));
    this.send(ids.slice(0, half));
  }

  private done(ref: unknown, conversationId: string) {
    if (typeof ref !== "number") return;
    const batch = this.batches.get(ref);
    if (!batch) return;
    const i = batch.indexOf(conversationId);
    if (i >= 0) batch.splice(i, 1);
    if (batch.length > 0) return;
    this.batches.delete(ref);
    this.pump();
  }

  /**
   * Pages the conversation's changes over REST, then goes live. Each page goes out as it comes, and moves
   * the position: a catch-up cut short resumes from where it got to.
   */
  private async fetch(conversationId: string) {
    const socket = this.link.socket;
    const base = this.catchup.begin(conversationId);
    let after = base;
    this.emit("resync", { conversation_id: conversationId });
    const rest = this.rest;
    if (!rest) {
      this.emit("error", new ParleyError("resync_unavailable", "resync needs a REST client"));
      return this.catchup.finish(conversationId, base);
    }
    for (;;) {
      let page: Awaited<ReturnType<RestClient["messages"]["events"]>>;
      try {
        page = await rest.messages.events(conversationId, { after, limit: CATCHUP_PAGE });
      } catch (err) {
        return this.failed(err, socket);
      }
      // The socket went meanwhile (its successor resumes from the position reached), or we left it.
      if (this.link.socket !== socket || !this.catchup.isResuming(conversationId)) return;
      for (const message of page.items) this.catchup.replayed(replayedEvent(message));
      const last = page.items.at(-1);
      if (last) after = last.version_seq;
      if (!page.has_more || !last) break;
    }
    this.catchup.finish(conversationId, after);
  }

  /**
   * A REST call of a catch-up failed: the error is told, and the socket it was for is left, so that the
   * reconnect catches the conversation up again (from its position, which did not move, or from where we
   * joined it, which the reconnect's list of conversations says).
   */
  private failed(err: unknown, socket: WebSocket | null) {
    // Closed meanwhile (close() gives up the REST calls on their way): nothing to tell.
    if (this.link.stopped) return;
    this.emit("error", err instanceof ParleyError ? err : new ParleyError("network", String(err)));
    if (this.link.socket === socket) this.link.socket?.close(4000, "catch-up failed");
  }
}
