// How the bench's Markdown shows a figure: numbers with thousands separators, Parley's ratio to another
// target, and a table with its columns lined up (so that RESULTS.md reads as well as plain text).

/** A number with `digits` decimals and thousands separators; "–" when there is none. */
export const num = (n: number | undefined, digits = 0) =>
  n === undefined || Number.isNaN(n)
    ? "–"
    : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Bytes in KiB (1,024 bytes): the one unit of RSS per socket in RESULTS.md and LIMITS.md, as /proc's
 * VmRSS ("kB", 1,024 bytes) counts it.
 */
export const kib = (bytes: number | undefined) => (bytes === undefined ? undefined : bytes / 1024);

/** a / b as "1.23×", or "–" when either is missing or 0. */
export const ratio = (a: number | undefined, b: number | undefined) =>
  a && b ? `${(a / b).toFixed(2)}×` : "–";

/** A Markdown table: the first column left-aligned, the others right-aligned, every column padded. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}
