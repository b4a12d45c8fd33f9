// Access tokens: signed and verified with the pinned algorithm; a token verified once is remembered by its
// exact text, but its expiry is checked on every use and any other text is verified afresh.

import { expect, it } from "bun:test";
import { createTokenSigner } from "../../src/lib/tokens.ts";
import { rejection } from "../helpers.ts";

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const signer = () => createTokenSigner({ secret: "s".repeat(48), algorithm: "HS256", ttlMinutes: 30 });

const code = async (p: Promise<unknown>) => (await rejection(p)).code;

it("verifies its own tokens, again and again, with the same claims", async () => {
  const s = signer();
  const token = await s.sign("u-1", "s-1", T0);
  const first = await s.verify(token, T0 + 1000);
  expect(first).toMatchObject({ sub: "u-1", sid: "s-1", iat: T0 / 1000, exp: T0 / 1000 + 1800 });
  expect(await s.verify(token, T0 + 2000)).toEqual(first);
});

it("refuses a remembered token once it has expired, to the second", async () => {
  const s = signer();
  const token = await s.sign("u-1", "s-1", T0);
  await s.verify(token, T0);
  expect((await s.verify(token, T0 + 1_799_999)).sub).toBe("u-1");
  expect(await code(s.verify(token, T0 + 1_800_000))).toBe("token_expired");
  expect(await code(s.verify(token, T0 + 1_800_000))).toBe("token_expired");
});

it("verifies any other text afresh: a changed signature or another secret's token is refused", async () => {
  const s = signer();
  const token = await s.sign("u-1", "s-1", T0);
  await s.verify(token, T0);
  const last = token.at(-1) === "A" ? "B" : "A";
  expect(await code(s.verify(`${token.slice(0, -1)}${last}`, T0))).toBe("unauthorized");
  const other = createTokenSigner({ secret: "o".repeat(48), algorithm: "HS256", ttlMinutes: 30 });
  expect(await code(s.verify(await other.sign("u-1", "s-1", T0), T0))).toBe("unauthorized");
  expect(await code(s.verify("not a token", T0))).toBe("unauthorized");
});

it("signs and verifies with each algorithm ALGORITHM may name, and refuses the others' tokens", async () => {
  const algorithms = ["HS256", "HS384", "HS512"] as const;
  const signers = algorithms.map((algorithm) =>
    createTokenSigner({ secret: "s".repeat(48), algorithm, ttlMinutes: 30 }),
  );
  for (const [i, s] of signers.entries()) {
    const token = await s.sign("u-1", "s-1", T0);
    expect(JSON.parse(atob(token.split(".")[0] as string)).alg).toBe(algorithms[i]);
    expect((await s.verify(token, T0)).sub).toBe("u-1");
    // Same secret, another algorithm: pinned, so refused.
    const other = signers[(i + 1) % signers.length] as (typeof signers)[number];
    expect(await code(other.verify(token, T0))).toBe("unauthorized");
  }
});
