// The SDK must run in browsers: it bundles for the browser target with no Node built-ins and no TypeBox.

import { expect, it } from "bun:test";
import { join } from "node:path";

it("bundles for browsers without Node built-ins or server-only code", async () => {
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, "../../src/client/index.ts")],
    target: "browser",
    minify: true,
  });
  expect(result.success).toBe(true);
  const code = await (result.outputs[0] as Blob).text();
  expect(code).not.toMatch(/\bnode:|require\("(fs|path|crypto|net|tls)"\)/);
  expect(code).not.toContain("TypeCompiler");
  expect(code).not.toContain("bun:sqlite");
  // Small enough to ship to a page: msgpackr plus the client.
  expect(code.length).toBeLessThan(200_000);
});
