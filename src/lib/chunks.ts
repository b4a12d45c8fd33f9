// Work over many items (sockets, users) that must leave the event loop free: a chunk at a time, a turn
// of the loop between chunks.

/** Store reads in flight at once, and items looked at between two turns of the loop. */
export const CHUNK = 500;

/**
 * Runs `each` over the items CHUNK at a time, giving the event loop a turn between chunks. One that fails
 * does not stop the others; the first failure is thrown at the end.
 */
export async function inChunks<T>(items: readonly T[], each: (item: T) => Promise<unknown>): Promise<void> {
  let failure: { err: unknown } | undefined;
  for (let i = 0; i < items.length; i += CHUNK) {
    if (i > 0) await nextTurn();
    for (const result of await Promise.allSettled(items.slice(i, i + CHUNK).map(each)))
      if (result.status === "rejected") failure ??= { err: result.reason };
  }
  if (failure) throw failure.err;
}

export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
