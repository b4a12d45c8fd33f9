// The targets' names and BENCH_TARGETS, apart from starting them (targets.ts), so that the suite can check
// the variable before it loads any scenario (lib/options.ts).

export type TargetName = "parley" | "bare-bun" | "node-ws" | "socketio";
const ALL_TARGETS: readonly TargetName[] = ["parley", "bare-bun", "node-ws", "socketio"];
/**
 * The rest scenario's targets: Parley, the REST ceiling (bench/peers/rest-bun.ts) and Node.js with Express
 * (bench/peers/rest-express.mjs). `bare-bun` names the ceiling in both.
 */
export type RestTargetName = "parley" | "bare-bun" | "node-express";
const REST_TARGETS: readonly RestTargetName[] = ["parley", "bare-bun", "node-express"];

/** Every target, or the ones BENCH_TARGETS names (comma-separated), in the suite's order. */
export function pickTargets(list: string | undefined): readonly TargetName[] {
  return picked(ALL_TARGETS, list);
}

/** The rest scenario's targets, or the ones BENCH_TARGETS names. */
export function restTargets(list: string | undefined): readonly RestTargetName[] {
  return picked(REST_TARGETS, list);
}

/** `all`, or those of them `list` names; a name no scenario knows is an error, one of another scenario's is not. */
function picked<T extends string>(all: readonly T[], list: string | undefined): readonly T[] {
  if (!list) return all;
  const names = list
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  const known: readonly string[] = [...ALL_TARGETS, ...REST_TARGETS];
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length) throw new Error(`BENCH_TARGETS: unknown target(s) ${unknown.join(", ")}`);
  return all.filter((t) => names.includes(t));
}
