// How fast the machine was while a run ran: the same two small measurements at its start and at its end.
// Absolute figures move by up to 2x between runs on a shared machine (a neighbour's load, the disk's
// state), so a run records what one core and the disk could do, next to its ratios.

import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Packr } from "msgpackr";

export interface Gauge {
  /** µs to decode a reference 240-byte frame (a live message.created) with msgpackr: best of 5 rounds. */
  decode_us: number;
  /** A 24 KiB write and fsync in the temp directory, where the Parley servers keep their DATA_DIR. */
  fsync_p50_ms: number;
  fsync_p99_ms: number;
  /** µs per round trip of 64 bytes over loopback TCP (Bun.listen / Bun.connect): the kernel's share of every delivery. */
  loopback_rtt_us?: number;
  /** ms of one argon2id hash at the server's default cost (64 MiB, 2 passes): memory-bound, as sign-ins are. */
  argon2_ms?: number;
}

const FRAME = new Packr({ useRecords: false, mapsAsObjects: true }).pack({
  type: "event",
  kind: "message.created",
  conversation_id: "01kbz6m1d3ejq9v0ftw2",
  seq: 123456,
  message: {
    id: "01kbz6m1e0c5n2x8yq4r",
    sender_id: "01kbz6kz7ag0m3s1pd6h",
    content: "1764460000000.123|17",
    created_at: "2026-11-30T00:00:00.000Z",
    client_msg_id: "17-123456-1764460000000",
  },
});

export async function gauge(
  rounds = 5,
  decodes = 50_000,
  syncs = 200,
  trips = 5_000,
  hashes = 3,
): Promise<Gauge> {
  const reader = new Packr({ useRecords: false, mapsAsObjects: true });
  const bytes = Buffer.from(FRAME);
  let best = Number.POSITIVE_INFINITY;
  let seen = 0;
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < decodes; i++) seen += (reader.unpack(bytes) as { seq: number }).seq;
    best = Math.min(best, ((performance.now() - start) * 1000) / decodes);
  }
  if (seen === 0) throw new Error("gauge: the reference frame did not decode");

  const dir = mkdtempSync(join(tmpdir(), "parley-gauge-"));
  const times: number[] = [];
  try {
    const fd = openSync(join(dir, "sync"), "w");
    try {
      const block = Buffer.alloc(24 * 1024, 7);
      for (let i = 0; i < syncs; i++) {
        const start = performance.now();
        writeSync(fd, block, 0, block.length, (i % 64) * block.length);
        fsyncSync(fd);
        times.push(performance.now() - start);
      }
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] as number;
  const round = (n: number, digits: number) => Number(n.toFixed(digits));
  return {
    decode_us: round(best, 3),
    fsync_p50_ms: round(at(0.5), 3),
    fsync_p99_ms: round(at(0.99), 3),
    loopback_rtt_us: round(await loopbackRoundTrip(trips), 1),
    argon2_ms: round(await argon2(hashes), 1),
  };
}

/** The median ms of `hashes` argon2id hashes at the server's default cost. */
async function argon2(hashes: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < hashes; i++) {
    const start = performance.now();
    await Bun.password.hash("gauge", { algorithm: "argon2id", memoryCost: 65_536, timeCost: 2 });
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

/** Mean µs of `trips` 64-byte ping-pongs between two sockets of this process over 127.0.0.1. */
async function loopbackRoundTrip(trips: number): Promise<number> {
  const ping = new Uint8Array(64).fill(1);
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data: (socket, data) => void socket.write(data) },
  });
  try {
    let left = trips;
    let start = 0;
    let got = 0;
    let done: (us: number) => void = () => {};
    const finished = new Promise<number>((resolve) => {
      done = resolve;
    });
    const client = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data(socket, data) {
          got += data.length;
          if (got < ping.length) return; // a pong may arrive in pieces
          got -= ping.length;
          if (--left === 0) done(((performance.now() - start) * 1000) / trips);
          else socket.write(ping);
        },
      },
    });
    start = performance.now();
    client.write(ping);
    const timeout = new Promise<number>((_, reject) =>
      setTimeout(() => reject(new Error("gauge: loopback round trips timed out")), 30_000).unref(),
    );
    try {
      return await Promise.race([finished, timeout]);
    } finally {
      client.end();
    }
  } finally {
    server.stop(true);
  }
}
