// A promise raced against a timer that is always cleared: what a caller does when something it waits for
// (Redis, the store, closing sockets) takes too long.

/**
 * `p`'s outcome, or after `ms` what `late` returns (or throws, to reject). The timer never outlives the
 * race, so nothing keeps the process alive or fires after the answer.
 */
export function within<T>(p: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  return Promise.race([p, elapsed]).finally(() => clearTimeout(timer));
}
