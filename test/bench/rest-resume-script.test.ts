// bench/run-rest-resume.ts as a load tester runs it: a failed target is an exit code 1, a partial run leaves
// the published rest-resume-latest.json alone, and a SIGTERM stops the servers it started and removes their
// temp dirs (it exited 0 with a failed target, overwrote the published file on every run, and a signal left
// Parley's server running with its DATA_DIR).

import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const SCRIPT = join(ROOT, "bench", "run-rest-resume.ts");
const LATEST = join(ROOT, "bench", "results", "rest-resume-latest.json");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const freshTmp = () => {
  const d = mkdtempSync(join(tmpdir(), "parley-rr-test-"));
  dirs.push(d);
  return d;
};

describe("bench/run-rest-resume.ts", () => {
  it("exits 1 when a target fails, and a partial run writes its JSON to the temp dir only", async () => {
    const tmp = freshTmp();
    const published = readFileSync(LATEST, "utf8");
    const run = Bun.spawn([process.execPath, "run", SCRIPT, "--quick", "--only", "rest"], {
      // Parley refuses this configuration at boot (exit 78): its row fails.
      env: { ...process.env, TMPDIR: tmp, BENCH_TARGETS: "parley", WS_HEARTBEAT_INTERVAL: "1000000" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([run.exited, new Response(run.stderr).text()]);
    expect(code).toBe(1);
    expect(stderr).toContain("1 failed (exit code 1)");
    expect(stderr).toContain("rest: parley: failed");
    const partial = readdirSync(tmp).filter((f) => f.startsWith("parley-rest-resume-partial-"));
    expect(partial).toHaveLength(1);
    const data = JSON.parse(readFileSync(join(tmp, partial[0] as string), "utf8")) as {
      results: { target: string; notes?: string[] }[];
    };
    expect(data.results[0]?.target).toBe("parley");
    expect(data.results[0]?.notes?.[0]).toStartWith("failed");
    expect(readFileSync(LATEST, "utf8")).toBe(published);
  }, 30_000);

  it("on SIGTERM stops the server it started and removes its DATA_DIR, exit 143", async () => {
    const tmp = freshTmp();
    const run = Bun.spawn([process.execPath, "run", SCRIPT, "--quick", "--only", "rest"], {
      env: { ...process.env, TMPDIR: tmp, BENCH_TARGETS: "parley" },
      stdout: "ignore",
      stderr: "pipe",
    });
    const dataDirs = () => readdirSync(tmp).filter((f) => f.startsWith("parley-bench-"));
    for (let i = 0; i < 500 && dataDirs().length === 0; i++) await Bun.sleep(20);
    expect(dataDirs()).toHaveLength(1);
    run.kill("SIGTERM");
    const [code, stderr] = await Promise.all([run.exited, new Response(run.stderr).text()]);
    expect(code).toBe(143);
    expect(stderr).toContain("SIGTERM: stopping");
    expect(dataDirs()).toEqual([]);
  }, 30_000);
});
