// Handshakes the kernel dropped because a listen queue was full (TcpExt ListenDrops in /proc/net/netstat,
// counted for the whole machine). A storm of connects overflows the queue (Bun's holds 512, Node.js's 511,
// neither settable from the application); TCP retries a dropped handshake after its backoff, a second
// and more later (one storm's connects came in clusters at 0–0.75, 2, 4.25 and 7 s): that sets a
// reconnect storm's tail when the counter moves (bench/LIMITS.md, resume).

import { readFileSync } from "node:fs";

/** ListenDrops from the text of /proc/net/netstat; undefined when the text has no such counter. */
export function parseListenDrops(text: string): number | undefined {
  const lines = text.split("\n");
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = lines[i]?.split(/\s+/) ?? [];
    const values = lines[i + 1]?.split(/\s+/) ?? [];
    if (names[0] !== "TcpExt:" || values[0] !== "TcpExt:") continue;
    const at = names.indexOf("ListenDrops");
    const value = Number(values[at]);
    return at > 0 && Number.isInteger(value) ? value : undefined;
  }
  return undefined;
}

/** The machine's ListenDrops now; undefined where there is no /proc/net/netstat (not Linux). */
export function listenDrops(): number | undefined {
  try {
    return parseListenDrops(readFileSync("/proc/net/netstat", "utf8"));
  } catch {
    return undefined;
  }
}

/** How many more since `before` (undefined when either reading is missing). */
export function listenDropsSince(before: number | undefined): number | undefined {
  const after = listenDrops();
  return before === undefined || after === undefined ? undefined : after - before;
}

/** The storm row's note for them. */
export function listenDropsNote(drops: number): string {
  return drops === 0
    ? "no handshake dropped by a full listen queue during the storm (the kernel's ListenDrops)"
    : `${drops} handshakes dropped by a full listen queue during the storm (the kernel's ListenDrops, ` +
        "machine-wide): TCP retries each after its backoff, seconds later, which sets the connect tail";
}
