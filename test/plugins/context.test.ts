// Which address a request comes from: the peer, or an X-Forwarded-For entry counted from the right by the
// number of proxies TRUST_PROXY trusts.

import { describe, expect, it } from "bun:test";
import { Elysia } from "elysia";
import { loadConfig } from "../../src/config.ts";
import { addressKey, clientAddress, requestContext } from "../../src/plugins/context.ts";

const PEER = "192.0.2.1";
const server = { requestIP: () => ({ address: PEER, family: "IPv4" as const, port: 40000 }) };

/** The address chosen for a request carrying these X-Forwarded-For headers, with `proxies` trusted. */
const addressOf = (proxies: number, ...forwardedFor: string[]) => {
  const headers = new Headers(forwardedFor.map((value): [string, string] => ["x-forwarded-for", value]));
  return clientAddress(new Request("http://localhost/", { headers }), server, proxies);
};

// client 203.0.113.5 -> CDN 198.51.100.7 (appends the client) -> balancer 10.0.0.2 (appends the CDN)
const CHAIN = "203.0.113.5, 198.51.100.7";

describe("clientAddress", () => {
  it("takes the peer address and ignores X-Forwarded-For when no proxy is trusted", () => {
    expect(addressOf(0, CHAIN)).toBe(PEER);
    expect(addressOf(0)).toBe(PEER);
  });

  it("takes the entry as many places from the right as there are proxies", () => {
    expect(addressOf(1, CHAIN)).toBe("198.51.100.7");
    expect(addressOf(2, CHAIN)).toBe("203.0.113.5");
    expect(addressOf(3, `198.18.0.4, ${CHAIN}`)).toBe("198.18.0.4");
  });

  it("takes TRUST_PROXY=true as one proxy: the last entry", () => {
    // With both keys given, loading writes nothing under DATA_DIR.
    const key = "k".repeat(40);
    const { config } = loadConfig({ SECRET_KEY: key, ENCRYPTION_KEY: key, TRUST_PROXY: "true" });
    const headers = { "x-forwarded-for": CHAIN };
    expect(clientAddress(new Request("http://localhost/", { headers }), server, config.TRUST_PROXY)).toBe(
      "198.51.100.7",
    );
  });

  it("ignores what the client wrote before the entries the trusted proxies appended", () => {
    expect(addressOf(1, "127.0.0.1, 10.9.9.9, 203.0.113.5")).toBe("203.0.113.5");
    expect(addressOf(2, `127.0.0.1, 10.9.9.9, ${CHAIN}`)).toBe("203.0.113.5");
  });

  it("takes the first entry when a proxy in the chain did not append", () => {
    expect(addressOf(2, "198.51.100.7")).toBe("198.51.100.7");
    expect(addressOf(3, CHAIN)).toBe("203.0.113.5");
  });

  it("reads several X-Forwarded-For headers as one list, in order", () => {
    expect(addressOf(1, "203.0.113.5", "198.51.100.7")).toBe("198.51.100.7");
    expect(addressOf(2, "127.0.0.1", "203.0.113.5", "198.51.100.7")).toBe("203.0.113.5");
    expect(addressOf(3, "127.0.0.1, 203.0.113.5", "198.51.100.7")).toBe("127.0.0.1");
  });

  it("trims entries, and takes the peer address for an empty header or an empty entry", () => {
    expect(addressOf(2, " 203.0.113.5 ,198.51.100.7")).toBe("203.0.113.5");
    expect(addressOf(1, "")).toBe(PEER);
    expect(addressOf(2, "")).toBe(PEER);
    expect(addressOf(2, " , 198.51.100.7")).toBe(PEER);
    expect(addressOf(1)).toBe(PEER);
  });
});

describe("addressKey", () => {
  it("counts an IPv4 address as it is, and one mapped into IPv6 as the IPv4 one", () => {
    expect(addressKey("203.0.113.5")).toBe("ip:203.0.113.5");
    expect(addressKey("::ffff:203.0.113.5")).toBe("ip:203.0.113.5");
    expect(addressKey("::FFFF:203.0.113.5")).toBe("ip:203.0.113.5");
  });

  it("counts an IPv6 address by its /64, however it is written", () => {
    const key = "ip6:2001:db8:0:12::/64";
    for (const written of [
      "2001:db8:0:12::1",
      "2001:0DB8:0000:0012:ffff:ffff:ffff:ffff",
      "[2001:db8::12:0:0:0:1]",
      "2001:db8:0:12:0:0:1.2.3.4",
      "2001:db8:0:12::5%eth0",
    ])
      expect({ written, key: addressKey(written) }).toEqual({ written, key });
    expect(addressKey("2001:db8:0:13::1")).toBe("ip6:2001:db8:0:13::/64");
    expect(addressKey("::1")).toBe("ip6:0:0:0:0::/64");
  });

  it("keeps what is not an address as it is", () => {
    for (const text of ["unknown", "1:2:3", "1:2:3:4:5:6:7:8:9", "1::2::3", "2001:db8::g", "12345::1"])
      expect(addressKey(text)).toBe(`ip:${text}`);
  });
});

describe("requestContext", () => {
  const clientIpWith = async (proxies: number, headers: [string, string][]) => {
    const app = new Elysia()
      .use(requestContext({ TRUST_PROXY: proxies }))
      .get("/ip", ({ clientIp }) => clientIp);
    const res = await app.handle(new Request("http://localhost/ip", { headers: new Headers(headers) }));
    return res.text();
  };

  it("gives routes the address counted by TRUST_PROXY, over several X-Forwarded-For headers", async () => {
    const headers: [string, string][] = [
      ["x-forwarded-for", "127.0.0.1, 203.0.113.5"],
      ["x-forwarded-for", "198.51.100.7"],
    ];
    expect(await clientIpWith(1, headers)).toBe("198.51.100.7");
    expect(await clientIpWith(2, headers)).toBe("203.0.113.5");
    // app.handle has no socket: without a trusted proxy there is no address to give.
    expect(await clientIpWith(0, headers)).toBe("unknown");
  });
});
