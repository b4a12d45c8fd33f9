// Time as a dependency, so tests can move it (lockout windows, token expiry) without sleeping.

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private t = Date.now()) {}
  now() {
    return this.t;
  }
  advance(ms: number) {
    this.t += ms;
  }
}

// A message's view formats its times more than once, and messages of the same millisecond share them.
let isoMs = Number.NaN;
let isoText = "";

export function iso(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

/** The API's form of an optional time: ISO 8601, or null. */
export const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
