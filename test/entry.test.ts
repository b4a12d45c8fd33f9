// The two ways operators start Parley: `npm start` (bun run src/index.ts) and the compiled binary.
// Each is started as a real process on a free port with a temp DATA_DIR, used, and stopped with SIGTERM.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pkg from "../package.json" with { type: "json" };
import { openSocket, type Running, signup, start } from "./server-process.ts";

const root = join(import.meta.dir, "..");
const work = mkdtempSync(join(tmpdir(), "parley-entry-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
// Its own prefix on the shared Redis: another run's nodes (or the cluster tests') are not this run's, and
// the keys it leaves are removed after it.
const REDIS_PREFIX = `parley-test-entry-${crypto.randomUUID()}:`;
afterAll(async () => {
  const admin = new Redis(REDIS_URL);
  const keys = await admin.keys(`${REDIS_PREFIX}*`);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
});

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/** `npm start` with only PATH and `env`, expected to refuse to boot: its exit code and what it said. */
async function refusedBoot(env: Record<string, string>): Promise<{ code: number; said: string }> {
  const proc = Bun.spawn([process.execPath, "run", "src/index.ts"], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, said] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  return { code, said };
}

async function exercise(server: Running) {
  expect((await fetch(`${server.url}/health`)).status).toBe(200);
  expect((await fetch(`${server.url}/ready`)).status).toBe(200);
  const operator = await signup(server.url, "operator");
  const me = await fetch(`${server.url}/api/auth/me`, {
    headers: { authorization: `Bearer ${operator.access_token}` },
  });
  expect(((await me.json()) as { username: string }).username).toBe("operator");
  // A live socket is told to reconnect (4000) when the server shuts down.
  const ws = await openSocket(server.url, operator);
  const closed = new Promise<number>((resolve) => {
    ws.onclose = (e) => resolve(e.code);
  });
  server.proc.kill("SIGTERM");
  expect(await closed).toBe(4000);
  expect(await server.proc.exited).toBe(0);
}

describe("starting the server", () => {
  it("`npm start` serves on the embedded defaults: SQLite file under DATA_DIR", async () => {
    const dataDir = join(work, "start");
    const server = await start([process.execPath, "run", "src/index.ts"], { DATA_DIR: dataDir });
    await exercise(server);
    expect(await Bun.file(join(dataDir, "parley.db")).exists()).toBe(true);
    expect(await Bun.file(join(dataDir, "secrets.json")).exists()).toBe(true);
  }, 30_000);

  it("sets users a crashed run left online offline when it starts again", async () => {
    const env = { DATA_DIR: join(work, "crash"), LOG_LEVEL: "info" };
    const first = await start([process.execPath, "run", "src/index.ts"], env);
    const crashed = await signup(first.url, "crash");
    const { access_token, user } = crashed;
    const me = () =>
      fetch(`${first.url}/api/users/${user.id}`, { headers: { authorization: `Bearer ${access_token}` } });
    await openSocket(first.url, crashed);
    let status = "";
    for (let i = 0; i < 50 && status !== "online"; i++) {
      status = ((await (await me()).json()) as { status: string }).status;
      if (status !== "online") await Bun.sleep(20);
    }
    expect(status).toBe("online");
    first.proc.kill("SIGKILL");
    await first.proc.exited;
    const second = await start([process.execPath, "run", "src/index.ts"], env);
    try {
      const after = await fetch(`${second.url}/api/users/${user.id}`, {
        headers: { authorization: `Bearer ${access_token}` },
      });
      expect(((await after.json()) as { status: string }).status).toBe("offline");
      expect(second.lines.some((l) => l.includes("left online by the last run"))).toBe(true);
    } finally {
      second.proc.kill("SIGTERM");
      await second.proc.exited;
    }
  }, 30_000);

  it.each([
    [
      "a database a later release upgraded",
      (dir: string) => {
        const db = new Database(join(dir, "parley.db"));
        db.exec("PRAGMA user_version = 99");
        db.close();
      },
      "newer than this release knows",
    ],
    [
      "a file that is not a database",
      (dir: string) => writeFileSync(join(dir, "parley.db"), "not a database ".repeat(300)),
      "SQLITE_NOTADB",
    ],
    [
      "a directory where the database should be",
      (dir: string) => mkdirSync(join(dir, "parley.db")),
      "SQLITE_CANTOPEN",
    ],
  ])(
    "stops with exit 78 and one line, not a stack, on %s",
    async (_, prepare, says) => {
      const dir = mkdtempSync(join(work, "bad-db-"));
      prepare(dir);
      const { code, said } = await refusedBoot({ PORT: "0", DATA_DIR: dir });
      expect(code).toBe(78);
      expect(said).toContain("configuration error: ");
      expect(said).toContain(says);
      expect(said).not.toContain("    at ");
    },
    30_000,
  );

  it("stops with exit 78 and one line, not a stack, when MONGODB_URL's server does not answer", async () => {
    const { code, said } = await refusedBoot({
      PORT: "0",
      DATA_DIR: join(work, "mongo-gone"),
      MONGODB_URL: "mongodb://user:hunter2@127.0.0.1:9/?serverSelectionTimeoutMS=300",
    });
    expect(code).toBe(78);
    expect(said).toContain("configuration error: MONGODB_URL: no server answered");
    expect(said).not.toContain("hunter2");
    expect(said).not.toContain("    at ");
  }, 30_000);

  it("stops with exit 78 and one line naming PUBLIC_URL when HTTPS is required and none is given", async () => {
    const { code, said } = await refusedBoot({
      PORT: "0",
      DATA_DIR: join(work, "no-public-url"),
      REQUIRE_HTTPS: "true",
      TRUST_PROXY: "1",
    });
    expect(code).toBe(78);
    expect(said.trim().split("\n")).toEqual([expect.stringContaining("configuration error: PUBLIC_URL: ")]);
  }, 30_000);

  it("refuses a second process on the same DATA_DIR without REDIS_URL, and says what to set", async () => {
    const env = { DATA_DIR: join(work, "taken") };
    const first = await start([process.execPath, "run", "src/index.ts"], env);
    try {
      const { code, said } = await refusedBoot({ PORT: "0", ...env });
      expect(code).toBe(78);
      expect(said).toContain("is in use by another Parley process");
      expect(said).toContain("REDIS_URL");
    } finally {
      first.proc.kill("SIGTERM");
      await first.proc.exited;
    }
  }, 30_000);

  it("refuses a port another process holds (never shares it by accident), and says what to set", async () => {
    // Elysia would share it by default (SO_REUSEPORT): two servers with separate data, each with some clients.
    const first = await start([process.execPath, "run", "src/index.ts"], { DATA_DIR: join(work, "port-a") });
    try {
      const onItsPort = { HOST: "127.0.0.1", PORT: new URL(first.url).port };
      const second = await refusedBoot({ ...onItsPort, DATA_DIR: join(work, "port-b") });
      expect(second.code).toBe(78);
      expect(second.said).toContain("is in use by another process");
      expect(second.said).toContain("REUSE_PORT=true");
      // Asking to share it does not help while the holder does not.
      const sharing = await refusedBoot({
        ...onItsPort,
        DATA_DIR: join(work, "port-c"),
        REUSE_PORT: "true",
        REDIS_URL,
        REDIS_PREFIX,
      });
      expect(sharing.code).toBe(78);
      expect(sharing.said).toContain("by a process that does not share it");
      expect((await fetch(`${first.url}/health`)).status).toBe(200);
    } finally {
      first.proc.kill("SIGTERM");
      await first.proc.exited;
    }
  }, 30_000);

  it.each([
    ["a name that does not resolve", "no.such.host.invalid"],
    ["an address this machine does not have", "192.0.2.1"],
  ])(
    "stops with exit 78 naming HOST, not a stack, when HOST is %s",
    async (_, host) => {
      const { code, said } = await refusedBoot({ HOST: host, PORT: "0", DATA_DIR: join(work, "bad-host") });
      expect(code).toBe(78);
      expect(said).toContain("configuration error: HOST: ");
      expect(said).toContain(host);
      expect(said).not.toContain("    at ");
    },
    30_000,
  );

  // Ports below 1024 need privileges where the system keeps them (ip_unprivileged_port_start); the image
  // runs as a non-root user. Root here runs the server as nobody.
  const lowPortsGuarded = (() => {
    try {
      return Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8")) > 80;
    } catch {
      return false;
    }
  })();
  const unprivileged = (() => {
    if (process.getuid?.() !== 0) return [];
    if (!Bun.which("setpriv")) return null;
    const nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    // A checkout under a directory nobody may enter (root's home, say) cannot be run as nobody at all.
    const runs = Bun.spawnSync([...nobody, process.execPath, "-e", "require('./src/config.ts')"], {
      cwd: root,
    });
    return runs.exitCode === 0 ? nobody : null;
  })();
  it.skipIf(unprivileged === null || !lowPortsGuarded)(
    "stops with exit 78 naming PORT (not DATA_DIR) when it may not listen on a privileged port",
    async () => {
      // Its own temp dir: the suite's is the test runner's alone (0700), which nobody may not enter.
      const dataDir = mkdtempSync(join(tmpdir(), "parley-low-port-"));
      chmodSync(dataDir, 0o777);
      const proc = Bun.spawn([...(unprivileged ?? []), process.execPath, "run", "src/index.ts"], {
        cwd: root,
        env: { PATH: process.env.PATH ?? "", HOME: "/tmp", HOST: "127.0.0.1", PORT: "80", DATA_DIR: dataDir },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, said] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      rmSync(dataDir, { recursive: true, force: true });
      expect(code).toBe(78);
      expect(said).toContain("configuration error: PORT: ");
      expect(said).not.toContain("DATA_DIR");
    },
    30_000,
  );

  it("shares one port between nodes with REUSE_PORT and one Redis: the kernel spreads connections over both", async () => {
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const port = String(probe.port);
    probe.stop(true);
    const env = {
      PORT: port,
      DATA_DIR: join(work, "shared-port"),
      REDIS_URL,
      REDIS_PREFIX,
      REUSE_PORT: "true",
      LOG_LEVEL: "info",
    };
    const a = await start([process.execPath, "run", "src/index.ts"], env);
    const b = await start([process.execPath, "run", "src/index.ts"], env);
    try {
      expect([a.url, b.url]).toEqual([`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}`]);
      // A connection of its own per request: 40 of them all landing on one node would be chance of 2^-39.
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${a.url}/health`, { keepalive: false, headers: { connection: "close" } });
        expect(res.status).toBe(200);
      }
      // One log line per request; what the nodes wrote after "listening" arrives in chunks of lines.
      const served = (node: Running) => node.lines.join("\n").split('"/health"').length - 1;
      for (let waited = 0; served(a) + served(b) < 40 && waited < 3000; waited += 50) await Bun.sleep(50);
      expect(served(a) + served(b)).toBe(40);
      expect(served(a)).toBeGreaterThan(0);
      expect(served(b)).toBeGreaterThan(0);
    } finally {
      a.proc.kill("SIGTERM");
      b.proc.kill("SIGTERM");
      expect([await a.proc.exited, await b.proc.exited]).toEqual([0, 0]);
    }
  }, 30_000);

  it("refuses to boot with a bad variable, naming it", async () => {
    const { code, said } = await refusedBoot({ DATA_DIR: join(work, "bad"), PORT: "eighty" });
    expect(code).not.toBe(0);
    expect(said).toContain("PORT");
  }, 30_000);

  it("refuses to boot in production with the example SECRET_KEY", async () => {
    const { code, said } = await refusedBoot({
      NODE_ENV: "production",
      DATA_DIR: join(work, "prod"),
      SECRET_KEY: "your-super-secret-key-change-in-production",
      ENCRYPTION_KEY: "e".repeat(40),
    });
    expect(code).not.toBe(0);
    expect(said).toContain("SECRET_KEY");
  }, 30_000);
});

describe("the compiled binary", () => {
  const binary = join(work, "parley");
  beforeAll(async () => {
    // Built as `npm run build` builds it (and the Dockerfile, test/dockerfile.test.ts): what ships is tested.
    const flags = pkg.scripts.build.split(/\s+/).filter((w) => w.startsWith("--") && w !== "--outfile");
    const build = Bun.spawn([process.execPath, "build", ...flags, "src/index.ts", "--outfile", binary], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
    });
    if ((await build.exited) !== 0) throw new Error(await new Response(build.stderr).text());
  }, 120_000);

  it("runs on its own: serves, stores, and stops cleanly on SIGTERM", async () => {
    const dataDir = join(work, "binary");
    const server = await start([binary], { DATA_DIR: dataDir });
    await exercise(server);
    expect(await Bun.file(join(dataDir, "parley.db")).exists()).toBe(true);
    // Its stdout is the log: JSON lines alone, authenticated requests (the auth macro) among those served.
    const notJson = server.lines.filter((line) => line.trim() !== "" && !isJson(line));
    expect(notJson).toEqual([]);
    // The operator command runs from the same binary against the same data.
    const admin = Bun.spawn([binary, "admin", "grant", "operator"], {
      env: { PATH: process.env.PATH ?? "", DATA_DIR: dataDir, LOG_LEVEL: "silent" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await admin.exited).toBe(0);
    expect(await new Response(admin.stdout).text()).toContain("operator is now an admin");
  }, 60_000);

  it("holds the MongoDB adapter too (loaded only when MONGODB_URL is set): an unanswered server is exit 78", async () => {
    const proc = Bun.spawn([binary], {
      env: {
        PATH: process.env.PATH ?? "",
        PORT: "0",
        DATA_DIR: join(work, "binary-mongo"),
        MONGODB_URL: "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, said] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(78);
    expect(said).toContain("configuration error: MONGODB_URL: no server answered");
  }, 30_000);

  it("runs as two nodes over one DATA_DIR and Redis: a message sent to one reaches a socket on the other", async () => {
    const env = {
      DATA_DIR: join(work, "two-nodes"),
      REDIS_URL,
      REDIS_PREFIX,
      LOG_LEVEL: "info",
    };
    const a = await start([binary], env);
    const b = await start([binary], env);
    try {
      const [alice, bob] = [await signup(a.url, "alice"), await signup(a.url, "bob")];
      const post = (path: string, body: unknown) =>
        fetch(`${a.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
          body: JSON.stringify(body),
        });
      const group = await post("/api/conversations", {
        conversation_type: "group",
        participant_ids: [bob.user.id],
      });
      const { id } = (await group.json()) as { id: string };
      const ws = await openSocket(b.url, bob);
      const frames: { type: string; message?: { content?: string } }[] = [];
      const delivered = new Promise((resolve, reject) => {
        ws.onmessage = (e) => {
          const frame = JSON.parse(String(e.data));
          frames.push(frame);
          if (frame.message?.content === "from node A") resolve(frame);
        };
        setTimeout(() => reject(new Error(`nothing from node A: ${JSON.stringify(frames)}`)), 5000);
      });
      await post(`/api/conversations/${id}/messages`, { content: "from node A" });
      await delivered;
      ws.close();
    } finally {
      a.proc.kill("SIGTERM");
      b.proc.kill("SIGTERM");
      expect([await a.proc.exited, await b.proc.exited]).toEqual([0, 0]);
    }
    expect(JSON.parse(a.lines.find((l) => l.includes("parley listening")) ?? "{}").broker).toBe("redis");
    // Nothing secret in the logs: the Redis URL may hold a password.
    expect([...a.lines, ...b.lines].join("\n")).not.toContain("redis://");
  }, 60_000);
});
