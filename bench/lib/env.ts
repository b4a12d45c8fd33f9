// Bench settings from the environment: an integer variable, or the scenario's default when it is unset.

/** `name` as an integer of at least `min`, `fallback` when unset or empty; anything else stops the run. */
export function envInt(
  name: string,
  fallback: number,
  min: number,
  env: Record<string, string | undefined> = process.env,
): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer >= ${min}, got ${raw}`);
  return n;
}
