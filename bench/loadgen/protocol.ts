// Messages between the bench parent and a load-generator process (one JSON object per line each way).

import type { SerializedHistogram } from "../lib/histogram.ts";
import type { ConnSpec } from "../lib/targets.ts";

export interface InitCommand {
  init: {
    mode: "raw" | "socketio";
    expectHello: boolean;
    /** Global user index and how to reach it. */
    conns: Array<{ index: number; spec: ConnSpec }>;
  };
}

export interface SenderSpec {
  /** Global index of the sending user (its socket lives in this worker). */
  conn: number;
  room: string;
  /** A receiver in the same worker whose receipts pace `window` mode. */
  probe: number;
  /** Open loop: messages per second. */
  rate?: number;
  /** Closed loop: at most this many messages sent but not yet seen by the probe. */
  window?: number;
}

/**
 * After a phase, deliveries still arriving are its backlog (a max phase can leave seconds of it with 1,000
 * members): a generator replies only once none has come for DRAIN_QUIET_MS, or after DRAIN_CAP_MS, so the
 * next phase does not measure this one's queues.
 */
export const DRAIN_QUIET_MS = 250;
export const DRAIN_CAP_MS = 30_000;

export interface PhaseCommand {
  phase: { senders: SenderSpec[]; warmupMs: number; measureMs: number; drainMs: number };
}

export interface QuitCommand {
  quit: true;
}

export type Command = InitCommand | PhaseCommand | QuitCommand;

export interface ReadyReply {
  ready: number;
  failed: number;
  firstError?: string;
}

export interface PhaseReply {
  /** Messages sent during the measured window. */
  sent: number;
  /** Receipts (by other users) during the measured window. */
  received: number;
  hist: SerializedHistogram;
  measureMs: number;
  cpuPct: number;
  acks: number;
  errors: number;
  /**
   * Sockets closed since the previous phase's reply (or since they opened), through this phase's drain: its
   * own closes, not those of the phases before it. By close code (Socket.IO: disconnect reason).
   */
  closed: number;
  closeCodes: Record<string, number>;
  stalls: number;
  /** How long after sending stopped deliveries went on arriving (at least the phase's drainMs). */
  drainMs: number;
  /** Deliveries that arrived after sending stopped: the phase's backlog. */
  late: number;
}
