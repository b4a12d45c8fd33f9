// The admin CLI: what it takes on its command line, where it writes, and a DATA_DIR it must not touch
// (no database there: none is made; one this release must upgrade: the server does that, not the CLI).

import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, runHealth } from "../src/cli.ts";
import { call, harness, signup } from "./helpers.ts";

const work = mkdtempSync(join(tmpdir(), "parley-cli-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function run(args: string[], config: Parameters<typeof runCli>[1]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    args,
    config,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out, err };
}

it("grants and lists on stdout, refuses command lines it does not take on stderr (64)", async () => {
  const h = await harness();
  const user = await signup(h.app);
  expect(await run(["admin", "grant", user.username], h.config)).toEqual({
    code: 0,
    out: [`${user.username} is now an admin`],
    err: [],
  });
  expect((await run(["admin", "list"], h.config)).out).toEqual([expect.stringContaining(user.username)]);
  for (const args of [
    ["admin", "grant", user.username, "extra"],
    ["admin", "list", "extra"],
    ["admin", "grant"],
    ["admin", "bogus"],
    ["bogus"],
    [],
  ]) {
    const res = await run(args, h.config);
    expect({ args, code: res.code, out: res.out }).toEqual({ args, code: 64, out: [] });
    expect(res.err.join()).toContain("usage: parley admin");
  }
  const missing = await run(["admin", "grant", "nobody_here"], h.config);
  expect([missing.code, missing.out, missing.err]).toEqual([1, [], ["no user nobody_here"]]);
  expect((await call(h.app, "GET", "/api/auth/me", { token: user.token })).status).toBe(200);
  await h.close();
});

it("makes no database where DATA_DIR has none (a mistyped DATA_DIR): 78", async () => {
  const h = await harness();
  const dataDir = join(work, "typo");
  const res = await run(["admin", "list"], { ...h.config, DATA_DIR: dataDir });
  expect(res.code).toBe(78);
  expect(res.err.join()).toContain("no database at");
  expect(existsSync(join(dataDir, "parley.db"))).toBe(false);
  // A command line it does not take is a usage error first, whatever DATA_DIR holds.
  expect((await run(["admin", "grant"], { ...h.config, DATA_DIR: dataDir })).code).toBe(64);
  await h.close();
});

it("leaves a file this release must upgrade to the server: 78, the file untouched", async () => {
  const h = await harness();
  const dataDir = mkdtempSync(join(work, "old-"));
  const old = new Database(join(dataDir, "parley.db"));
  old.exec("CREATE TABLE users (id TEXT); PRAGMA user_version = 1");
  old.close();
  const res = await run(["admin", "list"], { ...h.config, DATA_DIR: dataDir });
  expect(res.code).toBe(78);
  expect(res.err.join()).toContain("start this release's server once");
  const after = new Database(join(dataDir, "parley.db"));
  expect(after.query("PRAGMA user_version").values()[0]?.[0]).toBe(1);
  after.close();
  await h.close();
});

it("starts no server when the command line names something else: 64", async () => {
  const proc = Bun.spawn([process.execPath, "run", "src/index.ts", "bogus"], {
    cwd: join(import.meta.dir, ".."),
    env: { PATH: process.env.PATH ?? "", DATA_DIR: join(work, "bogus"), PORT: "0" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, said] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  expect(code).toBe(64);
  expect(said).toContain("usage: parley");
}, 30_000);

it("leaves a mistyped DATA_DIR as it found it: no directory made, no development keys written there", async () => {
  for (const args of [["admin", "list"], ["admin", "grant", "someone"], ["bogus"]]) {
    const dataDir = join(work, `untouched-${args.join("-")}`);
    const proc = Bun.spawn([process.execPath, "run", "src/index.ts", ...args], {
      cwd: join(import.meta.dir, ".."),
      env: { PATH: process.env.PATH ?? "", DATA_DIR: dataDir, PORT: "0" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const code = await proc.exited;
    expect({ args, code, made: existsSync(dataDir) }).toEqual({
      args,
      code: args[0] === "admin" ? 78 : 64,
      made: false,
    });
  }
}, 30_000);

describe("parley health (the image's HEALTHCHECK)", () => {
  it("exits 0 while the server on this host is ready, and 1 once it shuts down or does not answer", async () => {
    const h = await harness();
    try {
      h.app.listen({ port: 0, hostname: "127.0.0.1" });
      const port = String(h.app.server?.port);
      const said: string[] = [];
      expect(await runHealth({ PORT: port, HOST: "127.0.0.1" }, (l) => said.push(l))).toBe(0);
      expect(said.join()).toContain(`http://127.0.0.1:${port}/ready: 200`);
      // As the binary runs it, from the environment alone (HOST unset: every address, asked on loopback).
      const proc = Bun.spawn([process.execPath, "run", "src/index.ts", "health"], {
        cwd: join(import.meta.dir, ".."),
        env: { PATH: process.env.PATH ?? "", PORT: port },
        stdout: "pipe",
      });
      expect(await proc.exited).toBe(0);
      await h.deps.gateway.close();
      expect(await runHealth({ PORT: port }, (l) => said.push(l))).toBe(1);
      expect(said.at(-1)).toContain(": 503 ");
      await h.app.stop(true);
      expect(await runHealth({ PORT: port }, (l) => said.push(l))).toBe(1);
      expect(said.at(-1)).toContain("no answer");
    } finally {
      await h.close();
    }
  }, 30_000);
});

it("runs in the production image's environment with nothing but its store set: it signs and serves nothing", async () => {
  // `docker run --rm -v parley-data:/app/data parley admin grant …`: the image's NODE_ENV=production, and
  // none of the keys, TLS files or PUBLIC_URL the server needs (and the CLI never uses).
  const h = await harness();
  try {
    const user = await signup(h.app);
    const proc = Bun.spawn([process.execPath, "run", "src/index.ts", "admin", "grant", user.username], {
      cwd: join(import.meta.dir, ".."),
      env: { PATH: process.env.PATH ?? "", NODE_ENV: "production", DATA_DIR: h.dataDir },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out, said] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    expect({ code, out, said }).toEqual({ code: 0, out: `${user.username} is now an admin\n`, said: "" });
    // A variable it does read is still checked.
    const bad = Bun.spawn([process.execPath, "run", "src/index.ts", "admin", "list"], {
      cwd: join(import.meta.dir, ".."),
      env: {
        PATH: process.env.PATH ?? "",
        NODE_ENV: "production",
        DATA_DIR: h.dataDir,
        MONGODB_URL: "http://x",
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await bad.exited).toBe(78);
    expect(await new Response(bad.stderr).text()).toContain("MONGODB_URL");
  } finally {
    await h.close();
  }
}, 30_000);
