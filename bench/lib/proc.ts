// Child processes for the bench: spawning with line-wise stdout, a free loopback port, the CPU and memory of a
// process from /proc, and killing children for sure in finally blocks.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Subprocess } from "bun";

export type Child = Subprocess<"pipe", "pipe", "inherit">;

/** Reads a child's stdout line by line; `next(ms)` answers the next line or throws on timeout or exit. */
export function lines(child: Child) {
  const queue: string[] = [];
  const waiters: Array<(line: string | null) => void> = [];
  let ended = false;
  (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = child.stdout.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = waiters.shift();
        if (w) w(line);
        else queue.push(line);
      }
    }
    ended = true;
    for (const w of waiters.splice(0)) w(null);
  })();
  return {
    next(ms: number, what: string): Promise<string> {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      if (ended) return Promise.reject(new Error(`${what}: process exited`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`${what}: no answer within ${ms} ms`));
        }, ms);
        const done = (line: string | null) => {
          clearTimeout(timer);
          if (line === null) reject(new Error(`${what}: process exited`));
          else resolve(line);
        };
        waiters.push(done);
      });
    },
  };
}

/**
 * What a peer server (bench/peers) is started with before its own settings, in place of the bench's
 * environment: a PORT exported for Parley in the shell would make every peer listen there, so that at most
 * one starts. A peer listens on a free port of the OS's choosing unless a scenario says otherwise.
 */
export const PEER_ENV: Readonly<Record<string, string>> = { PORT: "0", REUSE_PORT: "false" };

/** What must be undone if the bench is stopped by a signal: live children to stop, temp dirs to remove. */
const cleanups = new Set<() => unknown>();
/** Once a signal came: every cleanup under way, the ones registered since included. */
let stopping: Array<Promise<unknown>> | undefined;
const run = (fn: () => unknown) =>
  Promise.resolve()
    .then(fn)
    .catch(() => {});

/**
 * Registers `fn` to run if the bench is stopped by SIGINT or SIGTERM; the answer unregisters it. Once the
 * bench is stopping, `fn` runs at once: a child the scenario still starts meanwhile is stopped as it starts.
 */
export function onStop(fn: () => unknown): () => void {
  if (stopping) {
    stopping.push(run(fn));
    return () => {};
  }
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

/**
 * On SIGINT or SIGTERM, stops every child still registered (servers, peers, generators) and removes their
 * temp dirs before exiting with 128 + the signal's number. Without it a SIGTERM (a CI job cancelled,
 * `timeout`, `kill`) ends the bench alone and leaves its servers listening, each with its temp DATA_DIR.
 */
export function stopChildrenOnSignal(log: (line: string) => void) {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)
    process.once(signal, async () => {
      if (stopping) return;
      log(`${signal}: stopping ${cleanups.size} child process(es) and removing their temp dirs`);
      const under = [...cleanups].map(run);
      stopping = under;
      cleanups.clear();
      for (let seen = 0; seen < under.length; ) {
        const batch = under.slice(seen);
        seen = under.length;
        await Promise.all(batch);
      }
      process.exit(code);
    });
}

export function spawn(cmd: string[], env: Record<string, string> = {}): Child {
  const child = Bun.spawn(cmd, {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
    env: { ...process.env, ...env },
  }) as Child;
  const off = onStop(() => stop(child));
  child.exited.then(off, off);
  return child;
}

/** Ends a child: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stop(child: Child | undefined, graceMs = 2000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** One JSON line to a child that reads commands from stdin (the load generators). */
export function sendLine(child: Child, value: unknown) {
  child.stdin.write(`${JSON.stringify(value)}\n`);
  child.stdin.flush();
}

/** Asks a generator to close its clients and exit (`{quit: true}`); SIGKILL if it has not within 3 s. */
export async function quit(child: Child) {
  try {
    sendLine(child, { quit: true });
  } catch {}
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await child.exited;
  clearTimeout(timer);
  await stop(child);
}

/** A loopback port that was free a moment ago (the OS picks it). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** TCP states as /proc/net/tcp writes them. */
const TCP_STATE = { established: "01", listen: "0A" } as const;

/**
 * How many TCP sockets in `state` on local port `port` process `pid` holds (Linux /proc; 0 where it is
 * missing). With a port shared by several processes (SO_REUSEPORT) an answer on the port does not say
 * which one is up, nor which one took a connection.
 */
export function tcpSockets(pid: number, port: number, state: keyof typeof TCP_STATE): number {
  const local = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    // sl local_address rem_address st ... inode
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(local) && f[3] === TCP_STATE[state] && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return 0;
  let held = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        if (inode !== undefined && inodes.has(inode)) held++;
      } catch {} // closed meanwhile
    }
  } catch {} // the process is gone
  return held;
}

/** Whether process `pid` listens on `port` (tcpSockets). */
export const listensOn = (pid: number, port: number) => tcpSockets(pid, port, "listen") > 0;

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far, or NaN where /proc is missing. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Resident memory of a process in MiB, or NaN. */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
