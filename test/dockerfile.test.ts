// The Dockerfile cannot be built in the test run (no Docker daemon); what it promises is checked from its
// text: the binary built as `npm run build` builds it, and a data directory the server's user may write.

import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };

const dockerfile = await Bun.file(join(import.meta.dir, "..", "Dockerfile")).text();
const lines = dockerfile.split("\n").map((l) => l.trim());
const final = lines.slice(lines.findLastIndex((l) => l.startsWith("FROM ")));

describe("the Dockerfile", () => {
  it("checks the container's health with the binary's own `health` command (distroless has no curl)", () => {
    const check = final.find((l) => l.startsWith("HEALTHCHECK "));
    expect(check).toMatch(/ CMD \["\/app\/parley", "health"\]$/);
    expect(final).toContain('ENTRYPOINT ["/app/parley"]');
  });

  it("compiles the binary with the flags `npm run build` uses", () => {
    const flags = (cmd: string) => cmd.split(/\s+/).filter((w) => w.startsWith("--") && w !== "--outfile");
    const build = lines.find((l) => l.includes("bun build")) ?? "";
    expect(flags(build)).toEqual(flags(pkg.scripts.build));
  });

  it("gives DATA_DIR to the user the server runs as: a volume Docker makes where the image has no directory is root's", () => {
    const user = final.find((l) => l.startsWith("USER "))?.split(/\s+/)[1];
    const dataDir = /DATA_DIR=(\S+)/.exec(final.find((l) => l.startsWith("ENV ")) ?? "")?.[1];
    expect(user).toBe("nonroot");
    expect(dataDir).toBe("/app/data");
    expect(final).toContain('VOLUME ["/app/data"]');
    // distroless has no shell to mkdir or chown with: the directory is copied in, owned by nonroot.
    const copied = final.find((l) => l.startsWith("COPY ") && / \/app\/data\/?$/.test(l));
    expect(copied).toMatch(/--chown=(nonroot|65532)(:(nonroot|65532))? /);
    expect(final.indexOf(copied ?? "")).toBeLessThan(final.indexOf('VOLUME ["/app/data"]'));
  });
});
