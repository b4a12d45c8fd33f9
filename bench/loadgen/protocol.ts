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
  closed: number;
  closeCodes: Record<string, number>;
  stalls: number;
}
