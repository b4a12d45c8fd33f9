// The kernel's count of handshakes dropped by full listen queues, which the resume storm reports.

import { expect, it } from "bun:test";
import { listenDrops, listenDropsNote, listenDropsSince, parseListenDrops } from "../../bench/lib/netstat.ts";
import { waitFor } from "../helpers.ts";

const TEXT = [
  "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits",
  "TcpExt: 12 3 7439 7440 99",
  "IpExt: InNoRoutes ListenDrops",
  "IpExt: 0 5",
].join("\n");

it("reads ListenDrops from the TcpExt lines, and nothing from text without them", () => {
  expect(parseListenDrops(TEXT)).toBe(7440);
  expect(parseListenDrops("IpExt: InNoRoutes ListenDrops\nIpExt: 0 5\n")).toBeUndefined();
  expect(parseListenDrops("TcpExt: SyncookiesSent\nTcpExt: 4\n")).toBeUndefined();
  expect(parseListenDrops("TcpExt: ListenDrops\nTcpExt: many\n")).toBeUndefined();
  expect(parseListenDrops("")).toBeUndefined();
});

// A listener that never accepts: Python's, since Bun's and Node.js's accept at once.
const NEVER_ACCEPTS = [
  "import socket, sys, time",
  "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)",
  "print(s.getsockname()[1], flush=True)",
  "time.sleep(30)",
].join("\n");

it.skipIf(process.platform !== "linux" || !Bun.which("python3"))(
  "counts handshakes a full listen queue drops on this machine",
  async () => {
    const before = listenDrops();
    expect(before).toBeGreaterThanOrEqual(0);
    const listener = Bun.spawn(["python3", "-c", NEVER_ACCEPTS], { stdout: "pipe" });
    try {
      const reader = listener.stdout.getReader();
      const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
      // Not awaited: a dropped handshake's connect waits for TCP's retry, a second or more.
      const sockets = Array.from({ length: 20 }, () =>
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).catch(() => undefined),
      );
      // The kernel counts a drop as the handshake arrives: polled for, not slept for.
      const dropped = await waitFor(() => listenDropsSince(before) || undefined, 5000);
      listener.kill();
      await Promise.all(sockets.map(async (s) => (await s)?.end()));
      expect(dropped).toBeGreaterThan(0);
    } finally {
      listener.kill();
    }
  },
);

it("says what the drops mean, or that there were none", () => {
  expect(listenDropsNote(0)).toContain("no handshake dropped");
  expect(listenDropsNote(12)).toContain("12 handshakes dropped");
  expect(listenDropsNote(12)).toContain("retries");
});
