// The README's list of error codes names every code the server answers with, and its status.

import { expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ERRORS } from "../../src/lib/errors.ts";

it("the README's error codes list every code of errors.ts with its status", () => {
  const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");
  const start = readme.indexOf("Error codes: ");
  expect(start).toBeGreaterThan(0);
  const list = readme.slice(start, readme.indexOf("A `validation_failed` error", start));
  // Each group of codes is followed by its status in parentheses: `a` / `b` (409).
  const listed = new Map<string, number>();
  for (const group of list.matchAll(/((?:`[a-z_]+`[\s/]*)+)\((\d{3})/g)) {
    for (const code of (group[1] as string).matchAll(/`([a-z_]+)`/g))
      listed.set(code[1] as string, Number(group[2]));
  }
  // `internal` (500) says nothing to act on.
  const answered = Object.entries(ERRORS).filter(([code]) => code !== "internal");
  expect(answered.filter(([code, status]) => listed.get(code) !== status)).toEqual([]);
});
