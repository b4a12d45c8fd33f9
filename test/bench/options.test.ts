// The suite's command line and BENCH_* variables are checked before anything runs: bad input stops the run
// at once, with one line saying what is wrong and exit code 2, not a stack trace nor minutes of other
// scenarios (bench/lib/options.ts).

import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { restResumeOptions, suiteOptions, UsageError } from "../../bench/lib/options.ts";

const INDEX = join(import.meta.dir, "..", "..", "bench", "index.ts");
const REST_RESUME = join(import.meta.dir, "..", "..", "bench", "run-rest-resume.ts");

describe("suiteOptions", () => {
  it("takes --quick, --render and --only with known scenarios, every scenario when --only is absent", () => {
    expect(suiteOptions([], {})).toEqual({ quick: false, render: false });
    expect(suiteOptions(["--quick", "--only", "fanout, dms"], {})).toEqual({
      quick: true,
      render: false,
      only: ["fanout", "dms"],
    });
    expect(suiteOptions(["--render"], {}).render).toBe(true);
  });

  it("refuses unknown options, scenarios and targets, and bad numbers, as UsageErrors", () => {
    const refused = (argv: string[], env: Record<string, string>, message: string) => {
      expect(() => suiteOptions(argv, env)).toThrow(UsageError);
      expect(() => suiteOptions(argv, env)).toThrow(message);
    };
    refused(["--quik"], {}, "Unknown option '--quik'");
    refused(["--only", "fanout,nope"], {}, "--only: unknown scenario(s) nope");
    refused(["--only", ","], {}, "--only: no scenario named");
    refused([], { BENCH_TARGETS: "parley,centrifugo" }, "BENCH_TARGETS: unknown target(s) centrifugo");
    refused([], { BENCH_MEASURE_MS: "2s" }, "BENCH_MEASURE_MS: expected an integer >= 100, got 2s");
    refused([], { BENCH_MEASURE_MS: "50" }, "BENCH_MEASURE_MS");
    refused([], { BENCH_ROUNDS: "0" }, "BENCH_ROUNDS: expected an integer >= 1, got 0");
    refused([], { BENCH_RESUME_GENERATORS: "1.5" }, "BENCH_RESUME_GENERATORS");
    refused([], { BENCH_REDIS_URL: "127.0.0.1:6379" }, "BENCH_REDIS_URL");
    refused([], { BENCH_REDIS_URL: "http://127.0.0.1:6379" }, "BENCH_REDIS_URL");
  });

  it("accepts the README's examples", () => {
    const env = {
      BENCH_TARGETS: "parley,bare-bun",
      BENCH_MEASURE_MS: "10000",
      BENCH_ROUNDS: "3",
      BENCH_REDIS_URL: "redis://bench-redis:6379",
    };
    expect(suiteOptions(["--quick", "--only", "fanout,dms"], env).only).toEqual(["fanout", "dms"]);
    // A rest target is a known name even where only the WebSocket scenarios run.
    expect(() => suiteOptions([], { BENCH_TARGETS: "node-express" })).not.toThrow();
  });
});

describe("restResumeOptions", () => {
  it("takes --quick and --only among rest and resume, both when --only is absent", () => {
    expect(restResumeOptions([], {})).toEqual({ quick: false });
    expect(restResumeOptions(["--quick", "--only", "resume"], {})).toEqual({ quick: true, only: ["resume"] });
  });

  it("refuses another scenario, --render and the suite's bad values, as UsageErrors", () => {
    const refused = (argv: string[], env: Record<string, string>, message: string) => {
      expect(() => restResumeOptions(argv, env)).toThrow(UsageError);
      expect(() => restResumeOptions(argv, env)).toThrow(message);
    };
    refused(["--only", "rest,fanout"], {}, "--only: unknown scenario(s) fanout; expected rest, resume");
    refused(["--only", ""], {}, "--only: no scenario named; expected rest, resume");
    refused(["--render"], {}, "Unknown option '--render'");
    refused([], { BENCH_TARGETS: "nope" }, "BENCH_TARGETS: unknown target(s) nope");
    refused([], { BENCH_RESUME_GENERATORS: "0" }, "BENCH_RESUME_GENERATORS");
  });
});

/** `script` with `argv` and `env` added to this process's environment, stopped after 15 s. */
const runScript = (script: string, argv: readonly string[], env: Record<string, string>) =>
  Bun.spawnSync([process.execPath, "run", script, ...argv], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 15_000,
  });

describe("bench/run-rest-resume.ts on bad input", () => {
  for (const [what, argv, env] of [
    ["an unknown scenario", ["--quick", "--only", "nope"], {}],
    ["one of the suite's other scenarios", ["--quick", "--only", "fanout"], {}],
    ["an unknown option", ["--quik"], {}],
    ["an unknown target", ["--quick", "--only", "rest"], { BENCH_TARGETS: "parley,nope" }],
  ] as const)
    it(`stops at once on ${what}: one line and its usage, exit code 2, no stack trace`, () => {
      const run = runScript(REST_RESUME, argv, env);
      const stderr = run.stderr.toString();
      expect(run.exitCode).toBe(2);
      expect(stderr).toStartWith("bench: ");
      expect(stderr).toContain("usage: bun run bench/run-rest-resume.ts");
      expect(stderr).toContain("scenarios: rest, resume\n");
      expect(stderr).not.toContain("    at ");
      expect(run.stdout.toString()).toBe("");
    });
});

describe("bench/index.ts on bad input", () => {
  for (const [what, argv, env] of [
    ["an unknown scenario", ["--quick", "--only", "nope"], {}],
    ["an unknown target", ["--quick", "--only", "fanout"], { BENCH_TARGETS: "parley,nope" }],
    ["a bad number", ["--quick", "--only", "fanout"], { BENCH_MEASURE_MS: "abc" }],
  ] as const)
    it(`stops at once on ${what}: one line and the usage, exit code 2, no stack trace`, () => {
      const run = runScript(INDEX, argv, env);
      const stderr = run.stderr.toString();
      expect(run.exitCode).toBe(2);
      expect(stderr).toStartWith("bench: ");
      expect(stderr).toContain("usage: bun run bench/index.ts");
      expect(stderr).not.toContain("    at ");
      expect(stderr).not.toContain("machine gauge");
      expect(run.stdout.toString()).toBe("");
    });
});
