// Gap-free, duplicate-free delivery of conversation events: the highest seq seen per conversation, and
// while a conversation is being resumed, its live events wait so that replayed and live changes come out
// once each and in seq order. A live event that skips a seq starts such a resume by itself: with several
// nodes, the change before it may still be on its way from another node. A conversation with no position
// yet is one we were added to: its log starts where we were added (the event that added us says where),
// and what came before is history, for the app to read over REST if it wants it. What a catch-up brings
// is marked `replayed`, so that an app can tell it from what happens now (and not ring for each of them).
// A catch-up's changes go out as they come (they come in seq order), each moving the position: one the
// socket drops partway through is resumed from the last change delivered, not from its start, and what the
// SDK holds meanwhile is the live events alone, never the catch-up.

import { type ConversationEvent, fromWire, replayShaped } from "./events.ts";
import type { MessageView } from "./types.ts";

export class Catchup {
  /** The highest seq delivered per conversation; sent in `resume` after a reconnect. */
  readonly positions = new Map<string, number>();
  /**
   * The conversations being resumed: their held (live) events, each with whether it came after we asked
   * the server for the catch-up, and whether we have asked.
   */
  private resuming = new Map<string, { buffer: Held[]; asked: boolean }>();

  constructor(
    private userId: string,
    private deliver: (event: ConversationEvent) => void,
    /** Asked to resume a conversation (begin() has been called for it) when a live event left a hole. */
    private onGap: (conversationId: string) => void,
    /**
     * Asked where we joined a conversation we have no position for, when its first live event is not the
     * one that added us; its events wait meanwhile. join() then gives the answer, before the resume.
     */
    private onUnknown: (conversationId: string) => void,
    /**
     * Told of a conversation no longer tracked (we left it, or it is gone); `tracked` says whether it was
     * until then (a second word of the same departure finds it forgotten already).
     */
    private onForget: (conversationId: string, tracked: boolean) => void = () => {},
  ) {}

  /**
   * An event frame as it came off the socket: one shaped as only a replay's are (told before fromWire
   * fills a live message out to the replay's shape) is taken as the next of a catch-up asked for.
   */
  frame(frame: ConversationEvent) {
    this.accept(fromWire(frame), replayShaped(frame));
  }

  /**
   * An event from the socket: delivered now, or held while its conversation is resuming. `replay` says it
   * is shaped as only a catch-up's events are (events.ts, replayShaped): once we have asked for the
   * catch-up, it is the next of the replay, and goes out at once (replayed()).
   */
  accept(event: ConversationEvent, replay = false) {
    const id = event.conversation_id;
    // Added to a channel as a reader: the event takes no seq (it is not in the log), and says where our
    // part of the log starts; a position we have already (the conversation list told us first) stays.
    if (event.seq === 0 && this.namesMe(event, "participant.added") && typeof event.joined_seq === "number")
      this.join(id, event.joined_seq);
    const held = this.resuming.get(id);
    if (held && event.seq > 0) {
      if (replay && held.asked) return this.replayed(event);
      return void held.buffer.push({ event, late: held.asked });
    }
    if (event.seq > 0 && !this.positions.has(id)) {
      // The event that added us starts our part of the log. Any other may have come after changes we
      // missed since the add (ours came before the socket opened, say): it waits to know where we joined.
      if (this.namesMe(event, "participant.added")) this.join(id, event.seq - 1);
      else return this.hold(id, event, this.onUnknown);
    }
    // Delivering it would move the position past the missing changes, and drop them as duplicates when
    // they come. It waits for a resume from where we are, which brings the hole and this one in order.
    if (event.seq > (this.positions.get(id) ?? 0) + 1) return this.hold(id, event, this.onGap);
    this.pass(event);
  }

  /**
   * The server says where a conversation's log stands (a `heads` frame: live changes may have been lost
   * between its nodes while one had lost Redis). Behind it, we resume; one we have no position for we
   * were added to meanwhile, and ask where. A resume under way brings it anyway.
   */
  head(conversationId: string, seq: number) {
    if (this.resuming.has(conversationId)) return;
    const position = this.positions.get(conversationId);
    if (position !== undefined && seq <= position) return;
    this.begin(conversationId);
    (position === undefined ? this.onUnknown : this.onGap)(conversationId);
  }

  /**
   * An ack moves the position only when it leaves no hole: with the event of an earlier seq still on its
   * way (another node), moving past it would drop that event as a duplicate. Nor does it give a position to
   * a conversation without one: its own event starts that conversation's catch-up from where we joined.
   */
  noteAck(conversationId: string, seq: number) {
    if (this.resuming.has(conversationId)) return;
    const position = this.positions.get(conversationId);
    if (position !== undefined && seq === position + 1) this.positions.set(conversationId, seq);
  }

  /** A conversation we were added to starts after `seq` (the server's joined_seq), unless we know it. */
  join(conversationId: string, seq: number) {
    if (!this.positions.has(conversationId)) this.positions.set(conversationId, seq);
  }

  isResuming(conversationId: string): boolean {
    return this.resuming.has(conversationId);
  }

  /** Starts holding a conversation's live events; answers the position to resume from. */
  begin(conversationId: string): number {
    if (!this.resuming.has(conversationId)) this.resuming.set(conversationId, { buffer: [], asked: false });
    return this.positions.get(conversationId) ?? 0;
  }

  /** Our resume of it is being sent: begin(), and what comes from now on may be the server's replay. */
  asking(conversationId: string): number {
    const base = this.begin(conversationId);
    const held = this.resuming.get(conversationId);
    if (held) held.asked = true;
    return base;
  }

  /**
   * The next change of a conversation's catch-up (the resume's replay, or a page of the REST one), which
   * come in seq order: the held events before it go out first, in seq order, then it, marked replayed;
   * the position moves with each. A held one of the same seq is the same change, heard live: it goes out
   * in its place (pass() drops the second copy), so that the live event that started a resume stays
   * unmarked. A held event past it stays held: more of the catch-up may come before it.
   */
  replayed(event: ConversationEvent) {
    const id = event.conversation_id;
    const held = this.resuming.get(id);
    if (!held) return;
    if (held.buffer.some((h) => h.event.seq <= event.seq)) {
      const due = held.buffer.filter((h) => h.event.seq <= event.seq);
      held.buffer = held.buffer.filter((h) => h.event.seq > event.seq);
      // Every change up to this one is in the catch-up: a held one that came after we asked is one of
      // them (or the same change live).
      for (const h of sorted(due)) {
        this.pass(h.late ? { ...h.event, replayed: true } : h.event);
        // It removed us from the conversation: nothing more of it is delivered.
        if (this.resuming.get(id) !== held) return;
      }
    }
    this.pass(event.replayed ? event : { ...event, replayed: true });
  }

  /**
   * The catch-up is complete up to seq `upTo` (the `resumed` frame's, or the last change paged over REST):
   * the held events go out in seq order, each once. One is marked replayed when it came after we asked
   * and the catch-up covers it (every change up to `upTo` was replayed, so it is one of them, or the same
   * change live). One that came live before we asked, or is past `upTo` (made after the server read its
   * log), is live.
   */
  finish(conversationId: string, upTo: number) {
    const held = this.resuming.get(conversationId);
    if (!held) return;
    this.resuming.delete(conversationId);
    for (const h of sorted(held.buffer))
      this.pass(h.late && h.event.seq <= upTo ? { ...h.event, replayed: true } : h.event);
  }

  /**
   * The server says the log of a conversation we are resuming ends before our position (its store went back
   * to an older backup, or the position given us was wrong): the position moves back to that end, or every
   * change up to our old position would be dropped as one already seen.
   */
  rewind(conversationId: string, seq: number) {
    const position = this.positions.get(conversationId);
    if (this.resuming.has(conversationId) && position !== undefined && seq < position)
      this.positions.set(conversationId, seq);
  }

  /** Stops tracking a conversation (we left it, or it is gone). */
  forget(conversationId: string) {
    const tracked = this.positions.has(conversationId) || this.resuming.has(conversationId);
    this.resuming.delete(conversationId);
    this.positions.delete(conversationId);
    this.onForget(conversationId, tracked);
  }

  /**
   * The socket closed: held events are dropped, the next resume replays them from the position reached
   * (past what of the catch-up was delivered).
   */
  abandon() {
    this.resuming.clear();
  }

  private hold(conversationId: string, event: ConversationEvent, ask: (conversationId: string) => void) {
    this.begin(conversationId);
    const held = this.resuming.get(conversationId);
    held?.buffer.push({ event, late: held.asked });
    ask(conversationId);
  }

  private pass(event: ConversationEvent) {
    const id = event.conversation_id;
    if (event.seq > 0) {
      const position = this.positions.get(id);
      if (position !== undefined && event.seq <= position) return;
      this.positions.set(id, event.seq);
    } else if (event.kind === "conversation.created" && !this.positions.has(id)) {
      // A new conversation: from now on it is resumed from its start.
      this.positions.set(id, 0);
    }
    this.deliver(event);
    if (this.namesMe(event, "participant.removed") || event.kind === "conversation.deleted") this.forget(id);
  }

  private namesMe(event: ConversationEvent, kind: "participant.added" | "participant.removed"): boolean {
    return event.kind === kind && event.user_id === this.userId;
  }
}

/** A live event held while its conversation is resumed, and whether it came after we asked for the resume. */
interface Held {
  event: ConversationEvent;
  late: boolean;
}

/** In seq order; stable, so that of two copies of a change the one held first goes out. */
function sorted(held: Held[]): Held[] {
  return [...held].sort((a, b) => a.event.seq - b.event.seq);
}

/** A message from a REST catch-up page as the event a resume would have sent for it. */
export function replayedEvent(message: MessageView): ConversationEvent {
  const kind =
    message.version_seq === message.seq
      ? "message.created"
      : message.deleted
        ? "message.deleted"
        : "message.changed";
  return {
    type: "event",
    kind,
    conversation_id: message.conversation_id,
    seq: message.version_seq,
    message,
    replayed: true,
  };
}
