// The suite's history scenario (bench/scenarios/history.ts) runs bench/history.ts as a child and reads the
// file that run wrote: a child that dies before writing is an error saying why, never the figures of the
// committed history-latest.json (an earlier run's 1,000,000 messages) passed off as this run's; and the
// child's temp dir is removed even when it could not remove it itself.

import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runHistory, why } from "../../bench/scenarios/history.ts";

const RESULTS = join(import.meta.dir, "..", "..", "bench", "results");
const scripts = mkdtempSync(join(tmpdir(), "parley-history-scenario-"));
afterAll(() => rmSync(scripts, { recursive: true, force: true }));

/** A stand-in for bench/history.ts that leaves a file in its TMPDIR, says why on stderr and exits 1. */
const dying = join(scripts, "dying.ts");
writeFileSync(
  dying,
  `import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
writeFileSync(join(tmpdir(), "left-behind"), "x");
writeFileSync(${JSON.stringify(join(scripts, "tmp-was"))}, tmpdir());
console.error("error: the database could not be opened");
process.exit(1);
`,
);

describe("the history scenario", () => {
  it("fails with the child's error when it dies before writing, in a full run too (1,000,000 messages)", async () => {
    const committed = readFileSync(join(RESULTS, "history-latest.json"), "utf8");
    expect(JSON.parse(committed).messages).toBe(1_000_000);
    const err = await runHistory(1_000_000, false, () => {}, new Set(readdirSync(RESULTS)), dying).catch(
      (e: unknown) => e,
    );
    expect(String(err)).toBe(
      "Error: history bench exited 1 without writing its results: error: the database could not be opened",
    );
    // Its TMPDIR was one of the scenario's own, gone now with what the child left there.
    const tmp = readFileSync(join(scripts, "tmp-was"), "utf8");
    expect(tmp).toContain("parley-bench-history-run-");
    expect(existsSync(tmp)).toBe(false);
  });
});

describe("why", () => {
  const stream = (text: string) => new Response(text).body as ReadableStream<Uint8Array>;
  it("picks Bun's error line out of the source excerpt, else the last lines", async () => {
    const bun =
      "47 | const dir = mkdtempSync(x);\n     ^\nENOENT: no such file, mkdtemp '/x'\n  code: \"ENOENT\"\n\nBun v1.4.5 (Linux x64)\n";
    expect(await why(stream(bun))).toBe("ENOENT: no such file, mkdtemp '/x'");
    expect(await why(stream("12 | throw new Error(x)\nerror: --messages must be an integer\n"))).toBe(
      "error: --messages must be an integer",
    );
    expect(await why(stream("a\nb\nc\nd\n"))).toBe("b | c | d");
    expect(await why(stream(""))).toBe("nothing on stderr");
  });
});
