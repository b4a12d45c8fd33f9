// What a node's Redis outages leave unsaid (outage.ts): the ids missed and their bound, the deaf window
// and its notice lost on the way, and the presence changes remembered for a node that could not hear.

import { describe, expect, it } from "bun:test";
import { MISSED_MAX, Outage } from "../../src/realtime/outage.ts";

describe("Outage", () => {
  it("gives what was missed once, each id once, and nothing when nothing was", () => {
    const o = new Outage();
    expect(o.takeMissed()).toBeNull();
    o.miss({ conversation_ids: ["c-1"], head_ids: ["c-1"] });
    o.miss({ head_ids: ["c-1", "c-2"], session_ids: ["s-1"] });
    expect(o.takeMissed()).toEqual({
      conversation_ids: ["c-1"],
      user_ids: [],
      session_ids: ["s-1"],
      presence_ids: [],
      head_ids: ["c-1", "c-2"],
    });
    expect(o.takeMissed()).toBeNull();
  });

  it("past MISSED_MAX ids, or told to, asks for everything instead, once", () => {
    const o = new Outage();
    o.miss({ user_ids: Array.from({ length: MISSED_MAX }, (_, i) => `u-${i}`) });
    o.miss({ presence_ids: ["u-one-more"] });
    expect(o.takeMissed()).toBe("all");
    expect(o.takeMissed()).toBeNull();
    o.miss("all");
    o.miss({ user_ids: ["u-1"] });
    expect(o.takeMissed()).toBe("all");
  });

  it("asks the others to look back over the outage and a margin; a notice lost makes the next one longer", async () => {
    const o = new Outage();
    const first = o.deafFor(5_000);
    expect(first).toBeGreaterThanOrEqual(15_000);
    expect(first).toBeLessThan(15_500);
    o.deafNoticeLost(first);
    await Bun.sleep(50);
    // The next outage was short, but the first was never told: the window reaches back to it.
    const second = o.deafFor(10);
    expect(second).toBeGreaterThanOrEqual(first + 40);
    // Told: the one after starts from its own outage.
    expect(o.deafFor(10)).toBeLessThan(10_100);
  });

  it("remembers the users whose presence it relayed lately, the latest 10,000", async () => {
    const o = new Outage();
    o.presenceRelayed("u-old");
    await Bun.sleep(40);
    const between = performance.now();
    await Bun.sleep(40);
    o.presenceRelayed("u-new");
    // A window reaching back to between the two (however long the machine took since).
    expect(o.presenceWithin(performance.now() - between)).toEqual(["u-new"]);
    expect(o.presenceWithin(60_000).sort()).toEqual(["u-new", "u-old"]);
    for (let i = 0; i < 10_000; i++) o.presenceRelayed(`u-${i}`);
    const all = o.presenceWithin(60_000);
    expect(all).toHaveLength(10_000);
    expect(all).not.toContain("u-old");
    expect(all).not.toContain("u-new");
    // A user relayed again counts as new: kept past others relayed since their first change.
    o.presenceRelayed("u-0");
    o.presenceRelayed("u-late");
    expect(o.presenceWithin(60_000)).toContain("u-0");
    expect(o.presenceWithin(60_000)).not.toContain("u-1");
  });
});
