// A bench stopped by SIGTERM or SIGINT stops its children and removes their temp dirs before it exits
// (bench/lib/proc.ts stopChildrenOnSignal): killed alone, it used to leave Parley's server listening, with
// its DATA_DIR, as an orphan.

import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PROC = join(import.meta.dir, "..", "..", "bench", "lib", "proc.ts");
const dir = mkdtempSync(join(tmpdir(), "parley-bench-signal-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for the suite: one child before the signal, one started while it stops, and a temp dir. */
const script = join(dir, "suite.ts");
writeFileSync(
  script,
  `import { mkdirSync, rmSync } from "node:fs";
import { onStop, spawn, stopChildrenOnSignal } from ${JSON.stringify(PROC)};
stopChildrenOnSignal(() => {});
const sleeper = () => spawn([process.execPath, "-e", "setInterval(() => {}, 1000)"]);
const data = ${JSON.stringify(join(dir, "data"))};
mkdirSync(data);
onStop(() => rmSync(data, { recursive: true, force: true }));
const first = sleeper();
// The scenario goes on while the cleanup runs: what it starts then is stopped as it starts.
onStop(async () => {
  await Bun.sleep(50);
  const late = sleeper();
  console.log(JSON.stringify({ late: late.pid }));
});
console.log(JSON.stringify({ first: first.pid }));
setInterval(() => {}, 1000);
`,
);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("a bench stopped by a signal", () => {
  for (const [signal, code] of [
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)
    it(`on ${signal}, stops its children, those started meanwhile too, removes its temp dirs, exits ${code}`, async () => {
      rmSync(join(dir, "data"), { recursive: true, force: true });
      const suite = Bun.spawn([process.execPath, "run", script], { stdout: "pipe", stderr: "inherit" });
      const reader = suite.stdout.getReader();
      const { value } = await reader.read();
      const { first } = JSON.parse(new TextDecoder().decode(value).split("\n")[0] as string) as {
        first: number;
      };
      expect(alive(first)).toBe(true);
      expect(existsSync(join(dir, "data"))).toBe(true);
      suite.kill(signal);
      let out = "";
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        out += new TextDecoder().decode(r.value);
      }
      expect(await suite.exited).toBe(code);
      const { late } = JSON.parse(out.trim().split("\n").at(-1) as string) as { late: number };
      expect(alive(first)).toBe(false);
      expect(alive(late)).toBe(false);
      expect(existsSync(join(dir, "data"))).toBe(false);
    }, 15_000);
});
