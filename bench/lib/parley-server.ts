// Starts the real Parley server (`bun run src/index.ts`) as its own process on a loopback port, with a temp
// DATA_DIR and limits far above any bench load, and keeps draining its JSON log so it never blocks on stdout.
// Every scenario's Parley starts here. BENCH_PROFILE_DIR=<dir>: the server writes a Markdown CPU profile
// there when it stops.

import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSeconds, freePort, listensOn, onStop } from "./proc.ts";

export interface ParleyServer {
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port> */
  wsUrl: string;
  pid: number;
  /** The environment it runs with (DATA_DIR, secrets): what seedAccounts needs to write its accounts. */
  env: Record<string, string | undefined>;
  /** Resident memory of the server process (VmRSS), or NaN once it is gone. */
  rssBytes(): number;
  /** CPU seconds (user + system) the server has used so far. */
  cpuSeconds(): number;
  /** Log lines read so far (one per HTTP request at LOG_LEVEL=info). */
  logLines(): number;
  /** The last warn/error/fatal lines of its log and its stderr, for notes when something went wrong. */
  problems(): string[];
  /** SIGTERM, SIGKILL after a grace period, then its own temp DATA_DIR is removed. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ParleyServerOptions {
  /** Extra or overriding environment variables. */
  env?: Record<string, string>;
  /** A DATA_DIR shared with other nodes (cross-node), kept on stop; by default a temp dir of its own. */
  dataDir?: string;
  /**
   * A port shared with other nodes (REUSE_PORT: the kernel spreads connections over them); ready once this
   * process listens on it. By default a free port of its own.
   */
  port?: number;
  startTimeoutMs?: number;
}

const ROOT = join(import.meta.dir, "..", "..");
const BIG = "100000000";
const PROBLEMS_KEPT = 20;

/** Rate and connection limits no bench load reaches, so a figure is never the limiter's. */
export const GENEROUS_LIMITS: Record<string, string> = {
  RATE_LIMIT_PER_MINUTE: BIG,
  RATE_LIMIT_BURST: BIG,
  AUTH_RATE_LIMIT_PER_MINUTE: BIG,
  AUTH_RATE_LIMIT_BURST: BIG,
  MAGIC_LINK_PER_HOUR: BIG,
  WS_RATE_PER_SECOND: BIG,
  WS_RATE_BURST: BIG,
  WS_MAX_CONNECTIONS_PER_USER: "100000",
  // The connections scenario goes as far as the machine allows, past the default node cap if it can.
  WS_MAX_CONNECTIONS: BIG,
  WS_CONNECTION_TIMEOUT: "900",
};

export async function startParleyServer(opts: ParleyServerOptions = {}): Promise<ParleyServer> {
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  if (!(startTimeoutMs > 0)) throw new TypeError(`startTimeoutMs: expected > 0, got ${startTimeoutMs}`);
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "parley-bench-"));
  const shared = opts.port !== undefined;
  const port = opts.port ?? freePort();
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_ENV: "production",
    // Plain HTTP over loopback, as the peers are measured; a deployment ends TLS here or at its proxy.
    REQUIRE_HTTPS: "false",
    HOST: "127.0.0.1",
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    SECRET_KEY: randomBytes(48).toString("base64"),
    ENCRYPTION_KEY: randomBytes(48).toString("base64"),
    ...GENEROUS_LIMITS,
    ...(shared ? { REUSE_PORT: "true" } : {}),
    ...opts.env,
  };
  const profileDir = process.env.BENCH_PROFILE_DIR;
  const profile = profileDir ? ["--cpu-prof-md", `--cpu-prof-dir=${profileDir}`] : [];
  const child = Bun.spawn([process.execPath, ...profile, "run", join(ROOT, "src/index.ts")], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env,
  });

  let lineCount = 0;
  const problems: string[] = [];
  const keep = (line: string) => {
    problems.push(line.slice(0, 500));
    if (problems.length > PROBLEMS_KEPT) problems.shift();
  };
  const drain = async (stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) => {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  };
  const stdoutDone = drain(child.stdout, (line) => {
    lineCount++;
    if (/"level":"(warn|error|fatal)"/.test(line)) keep(line);
  }).catch(() => {});
  const stderrDone = drain(child.stderr, keep).catch(() => {});

  // One stop, however many ask for it (the scenario, a signal's cleanup): each waits for the same end.
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= stopOnce();
    return stopping;
  };
  const off = onStop(stop);
  const stopOnce = async () => {
    off();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await child.exited;
      clearTimeout(timer);
    }
    await Promise.all([stdoutDone, stderrDone]);
    if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  try {
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await stop();
        throw new Error(
          `parley exited (${child.exitCode ?? child.signalCode}) before listening: ${problems.join(" | ")}`,
        );
      }
      // On a shared port another node may answer: this one is up once it listens too.
      const up =
        (!shared || listensOn(child.pid, port)) &&
        (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.ok)
          .catch(() => false));
      if (up) break;
      if (Date.now() > deadline) throw new Error(`parley did not answer /health within ${startTimeoutMs} ms`);
      await Bun.sleep(50);
    }
    return {
      url,
      wsUrl: `ws://127.0.0.1:${port}`,
      pid: child.pid,
      env,
      rssBytes: () => rssBytes(child.pid),
      cpuSeconds: () => cpuSeconds(child.pid),
      logLines: () => lineCount,
      problems: () => [...problems],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
