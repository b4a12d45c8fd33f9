// Messages between the resume scenario (scenarios/resume.ts, the coordinator) and its generator processes
// (loadgen/resume-worker.ts), one JSON object per line each way. Every command gets one reply, or an
// ErrorReply when the worker could not do it.

import type { TokenResponse } from "../../src/client/index.ts";

export interface ResumeMember {
  /** Global index of the user (its account in the seeded list). */
  index: number;
  group: number;
  conversationId: string;
  tokens: TokenResponse;
  /** The group's last_seq after it was created: where the first connect resumes from. */
  setupSeq: number;
}

/** Adopt the members' tokens, connect each at its group's setup seq and wait for `resumed`. */
export interface InitCommand {
  init: { baseUrl: string; concurrency: number; members: ResumeMember[] };
}
export interface InitReply {
  /** From the first connect to the last `resumed`, in this process. */
  connectMs: number;
}

/** Every member closes its socket. */
export interface DownCommand {
  down: true;
}
export interface DownReply {
  /** [global index, the seq it had seen when it closed]. */
  positions: Array<[number, number]>;
}

/** What the members of this process must see after the storm: the server's truth, from its events feed. */
export interface ExpectCommand {
  expect: {
    /** A member is caught up once it has seen its group's last seq. */
    targets: Array<{ group: number; lastSeq: number }>;
    /** The version_seqs changed after `position` in `group`, each once. */
    expected: Array<{ group: number; position: number; seqs: number[] }>;
  };
}
export interface ExpectReply {
  expecting: number;
}

/**
 * Every member reconnects at once and resumes. `t0` is the coordinator's storm start on the shared clock
 * (`performance.timeOrigin + performance.now()`, ms since the epoch); the reply comes when every member of
 * this process has caught up, or at `t0 + timeoutMs`.
 */
export interface StormCommand {
  storm: { t0: number; timeoutMs: number };
}
export interface CaughtReply {
  allCaughtUp: boolean;
  caughtUp: number;
}

/** Wait for the reconnects still running (until the deadline), let late frames arrive, then count. */
export interface FinishCommand {
  finish: { settleMs: number };
}
export interface FinishReply {
  /** Per member, in the order of `init.members`: ms from `t0` to caught up, or null. */
  caughtUpMs: Array<number | null>;
  /** The last successful reconnect, ms from `t0`. */
  lastConnectedMs: number;
  connectRetries: number;
  connectFailed: number;
  lost: number;
  duplicated: number;
  unexpected: number;
  /** Changes the app saw after the reconnect, duplicates included. */
  delivered: number;
  clientsWithLoss: number;
  /** Events that reached a client after it had closed its socket. */
  stray: number;
  /** Presence frames during the storm. */
  presence: number;
}

export interface QuitCommand {
  quit: true;
}

export interface ErrorReply {
  error: string;
}

export type ResumeCommand =
  | InitCommand
  | DownCommand
  | ExpectCommand
  | StormCommand
  | FinishCommand
  | QuitCommand;
