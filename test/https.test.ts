// HTTPS required (REQUIRE_HTTPS, on by default in production): what came in clear is refused before it is
// read, the probes excepted; what came over HTTPS, here (TLS_CERT_FILE) or at a trusted proxy
// (X-Forwarded-Proto), is answered with HSTS. And Parley serving HTTPS and WSS itself.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../src/app.ts";
import { ConfigError, loadConfig } from "../src/config.ts";
import { listen } from "../src/listen.ts";
import { call, type Harness, harness, newAccount } from "./helpers.ts";
import { UPGRADE_HEADERS } from "./realtime/ws-client.ts";

const STRONG = "k".repeat(40);
const work = mkdtempSync(join(tmpdir(), "parley-https-"));
const file = (name: string) => join(work, name);

/** A self-signed certificate for localhost and 127.0.0.1, and its key (openssl, as an operator would). */
async function certificate(name: string): Promise<{ cert: string; key: string }> {
  const [cert, key] = [file(`${name}.crt`), file(`${name}.key`)];
  const made = Bun.spawn(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  if ((await made.exited) !== 0) throw new Error(await new Response(made.stderr).text());
  return { cert, key };
}

/** A certificate that expired in 2020: `openssl ca` is what can date one (req -x509 cannot). */
async function expiredCertificate(): Promise<{ cert: string; key: string }> {
  const dir = mkdtempSync(join(work, "ca-"));
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "01\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    "[ca]\ndefault_ca = d\n[d]\ndir = .\ndatabase = ./index.txt\nserial = ./serial\n" +
      "new_certs_dir = .\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n",
  );
  const run = async (args: string[]) => {
    const p = Bun.spawn(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    if ((await p.exited) !== 0) throw new Error(await new Response(p.stderr).text());
  };
  await run(
    ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"].concat([
      "-keyout",
      "old.key",
      "-out",
      "old.csr",
      "-subj",
      "/CN=old",
    ]),
  );
  await run(
    ["ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "old.key", "-in", "old.csr"].concat([
      "-out",
      "old.crt",
      "-startdate",
      "20200101000000Z",
      "-enddate",
      "20200102000000Z",
    ]),
  );
  return { cert: join(dir, "old.crt"), key: join(dir, "old.key") };
}

let good: { cert: string; key: string };
let other: { cert: string; key: string };
beforeAll(async () => {
  [good, other] = await Promise.all([certificate("good"), certificate("other")]);
  writeFileSync(file("garbage.pem"), "-----BEGIN CERTIFICATE-----\nzzzz\n-----END CERTIFICATE-----\n");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The app's origin, where the links in mail lead: required whenever HTTPS is. */
const APP = "https://chat.example.com";

const production = (env: Record<string, string>) =>
  loadConfig({
    NODE_ENV: "production",
    DATA_DIR: mkdtempSync(join(work, "data-")),
    SECRET_KEY: STRONG,
    ENCRYPTION_KEY: STRONG,
    ...env,
  });

describe("REQUIRE_HTTPS and the TLS files at boot", () => {
  it("is on in production and off elsewhere unless set", () => {
    expect(production({ TRUST_PROXY: "1", PUBLIC_URL: APP }).config.REQUIRE_HTTPS).toBe(true);
    expect(production({ REQUIRE_HTTPS: "false" }).config.REQUIRE_HTTPS).toBe(false);
    const dev = { DATA_DIR: mkdtempSync(join(work, "data-")) };
    expect(loadConfig(dev).config.REQUIRE_HTTPS).toBe(false);
    expect(
      loadConfig({ ...dev, REQUIRE_HTTPS: "true", TRUST_PROXY: "1", PUBLIC_URL: APP }).config.REQUIRE_HTTPS,
    ).toBe(true);
  });

  it("stops boot when no request could be seen as HTTPS: no TLS here and no trusted proxy", () => {
    expect(() => production({})).toThrow(ConfigError);
    expect(() => production({})).toThrow("REQUIRE_HTTPS");
    const served = production({ TLS_CERT_FILE: good.cert, TLS_KEY_FILE: good.key, PUBLIC_URL: APP });
    expect(served.config.REQUIRE_HTTPS).toBe(true);
  });

  it("refuses an http:// PUBLIC_URL while HTTPS is required (magic links would go in clear)", () => {
    expect(() => production({ TRUST_PROXY: "1", PUBLIC_URL: "http://chat.example.com" })).toThrow(
      "PUBLIC_URL",
    );
    const https = production({ TRUST_PROXY: "1", PUBLIC_URL: "https://chat.example.com" });
    expect(https.config.PUBLIC_URL).toBe("https://chat.example.com");
    // Serving TLS itself without HTTPS required, the default link is this server's over https://.
    const served = production({
      REQUIRE_HTTPS: "false",
      TLS_CERT_FILE: good.cert,
      TLS_KEY_FILE: good.key,
      PORT: "8443",
    });
    expect(served.config.PUBLIC_URL).toBe("https://localhost:8443");
  });

  it("stops boot, naming PUBLIC_URL, when HTTPS is required and no PUBLIC_URL is given", () => {
    // Behind a proxy that ends TLS, the default sent every magic link to http://localhost:8000.
    const dev = { DATA_DIR: mkdtempSync(join(work, "data-")) };
    for (const env of [
      () => production({ TRUST_PROXY: "1" }),
      () => production({ TLS_CERT_FILE: good.cert, TLS_KEY_FILE: good.key }),
      () => loadConfig({ ...dev, REQUIRE_HTTPS: "true", TRUST_PROXY: "1" }),
    ]) {
      expect(env).toThrow(ConfigError);
      expect(env).toThrow(/^PUBLIC_URL: required with REQUIRE_HTTPS/);
    }
    // Not required when HTTPS is not: development keeps its default.
    expect(loadConfig(dev).config.PUBLIC_URL).toBe("http://localhost:8000");
    expect(production({ REQUIRE_HTTPS: "false" }).config.PUBLIC_URL).toBe("http://localhost:8000");
  });

  it("takes both TLS files or neither, each readable and of the right kind, the key the certificate's", () => {
    const dev = (env: Record<string, string>) =>
      loadConfig({ DATA_DIR: mkdtempSync(join(work, "d-")), ...env });
    expect(() => dev({ TLS_CERT_FILE: good.cert })).toThrow(
      "TLS_KEY_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together",
    );
    expect(() => dev({ TLS_KEY_FILE: good.key })).toThrow(
      "TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together",
    );
    expect(() => dev({ TLS_CERT_FILE: file("nowhere.crt"), TLS_KEY_FILE: good.key })).toThrow(
      "TLS_CERT_FILE: cannot read",
    );
    expect(() => dev({ TLS_CERT_FILE: file("garbage.pem"), TLS_KEY_FILE: good.key })).toThrow(
      "TLS_CERT_FILE: ",
    );
    expect(() => dev({ TLS_CERT_FILE: good.cert, TLS_KEY_FILE: good.cert })).toThrow(
      `TLS_KEY_FILE: ${good.cert} does not hold a PEM private key`,
    );
    expect(() => dev({ TLS_CERT_FILE: good.cert, TLS_KEY_FILE: other.key })).toThrow(
      "is not the private key of the certificate",
    );
    const { config, warnings } = dev({ TLS_CERT_FILE: good.cert, TLS_KEY_FILE: good.key });
    expect(config.TLS_CERT_FILE).toBe(good.cert);
    expect(warnings.some((w) => w.startsWith("TLS"))).toBe(false);
  });

  it("starts with an expired certificate, warning that clients will refuse it", async () => {
    const old = await expiredCertificate();
    const { warnings } = loadConfig({
      DATA_DIR: mkdtempSync(join(work, "d-")),
      TLS_CERT_FILE: old.cert,
      TLS_KEY_FILE: old.key,
    });
    expect(warnings).toContain(
      "TLS_CERT_FILE: the certificate expired on Jan  2 00:00:00 2020 GMT; clients will refuse it",
    );
  });
});

describe("behind a proxy that ends TLS (REQUIRE_HTTPS, TRUST_PROXY)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ REQUIRE_HTTPS: "true", TRUST_PROXY: "1", PUBLIC_URL: APP });
  });
  afterAll(() => h.close());
  const https = { "x-forwarded-proto": "https" };

  it("refuses a call that came in clear, before reading its credentials, with 403 https_required", async () => {
    const account = newAccount();
    const res = await call(h.app, "POST", "/api/auth/signup", { body: account });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("https_required");
    expect(res.headers.get("strict-transport-security")).toBeNull();
    // Nothing was done with it: no account.
    const signin = { email: account.email, password: account.password };
    const later = await call(h.app, "POST", "/api/auth/signin", { body: signin, headers: https });
    expect(later.body.error.code).toBe("invalid_credentials");
    const plain = await call(h.app, "GET", "/api/auth/me", { headers: { "x-forwarded-proto": "http" } });
    expect(plain.status).toBe(403);
  });

  it("answers a call that came over HTTPS, with HSTS, errors too", async () => {
    const res = await call(h.app, "POST", "/api/auth/signup", { body: newAccount(), headers: https });
    expect(res.status).toBe(201);
    expect(res.headers.get("strict-transport-security")).toBe("max-age=31536000");
    const unauthorized = await call(h.app, "GET", "/api/auth/me", { headers: https });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("strict-transport-security")).toBe("max-age=31536000");
  });

  it("reads the entry the outermost trusted proxy wrote, never one the client wrote before it", async () => {
    // One proxy trusted, which appended "http" after what the client sent.
    const spoofed = await call(h.app, "GET", "/api/auth/me", {
      headers: { "x-forwarded-proto": "https, http" },
    });
    expect(spoofed.body.error.code).toBe("https_required");
    const two = await harness({ REQUIRE_HTTPS: "true", TRUST_PROXY: "2", PUBLIC_URL: APP });
    try {
      const res = await call(two.app, "GET", "/api/auth/me", {
        headers: { "x-forwarded-proto": "https, http" },
      });
      expect(res.status).toBe(401);
    } finally {
      await two.close();
    }
  });

  it("answers the probes whatever the scheme: a load balancer checks them over plain HTTP", async () => {
    expect((await call(h.app, "GET", "/health")).status).toBe(200);
    expect((await call(h.app, "GET", "/ready")).status).toBe(200);
    // Off without a METRICS_TOKEN: 404 as over HTTPS, not 403.
    expect((await call(h.app, "GET", "/metrics")).status).toBe(404);
  });

  it("refuses a socket upgrade that came in clear, user and public alike", async () => {
    const app = createApp(h.deps);
    app.listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const base = `http://127.0.0.1:${app.server?.port}`;
      for (const path of ["/ws/public/news", "/ws/u-1/s-1"]) {
        const res = await fetch(`${base}${path}`, { headers: UPGRADE_HEADERS });
        expect(res.status).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("https_required");
      }
      const ws = new WebSocket(`ws://127.0.0.1:${app.server?.port}/ws/public/news`, {
        headers: { "x-forwarded-proto": "https" },
      } as unknown as string[]);
      await new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error("the upgrade over HTTPS was refused"));
      });
      ws.close();
    } finally {
      await app.stop(true);
    }
  });
});

describe("serving HTTPS and WSS itself (TLS_CERT_FILE, TLS_KEY_FILE)", () => {
  it("answers over TLS with HSTS, and a WebSocket opens over WSS", async () => {
    const h = await harness({
      REQUIRE_HTTPS: "true",
      PUBLIC_URL: APP,
      TLS_CERT_FILE: good.cert,
      TLS_KEY_FILE: good.key,
      PORT: "0",
      HOST: "127.0.0.1",
    });
    const app = listen(createApp(h.deps), h.config);
    try {
      const base = `https://127.0.0.1:${app.server?.port}`;
      const tls = { tls: { ca: await Bun.file(good.cert).text() } };
      const res = await fetch(`${base}/api/auth/signup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(newAccount()),
        ...tls,
      } as RequestInit);
      expect(res.status).toBe(201);
      expect(res.headers.get("strict-transport-security")).toBe("max-age=31536000");
      // Plain HTTP to the TLS port is no request at all.
      await expect(fetch(`http://127.0.0.1:${app.server?.port}/health`)).rejects.toBeDefined();
      const ws = new WebSocket(
        `wss://127.0.0.1:${app.server?.port}/ws/public/news`,
        tls as unknown as string[],
      );
      await new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error("wss did not open"));
      });
      ws.close();
    } finally {
      await app.stop(true);
      await h.close();
    }
  });
});
