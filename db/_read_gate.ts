/** Admits at most `concurrency` statements at once; see `createReadGate()`. */
export interface ReadGate {
  /**
   * Resolves true once the statement may run, or false (shed) at once when
   * `queue` statements wait already, or when no place frees up within `waitMs`.
   * Every true must be followed by one `leave()`.
   */
  enter(): Promise<boolean>;
  leave(): void;
}

/**
 * A semaphore in front of the read pool with a bounded, deadlined wait queue.
 * postgres.js queues every statement its pool cannot run at once, without a
 * bound and without a deadline: under more requests than the pool serves, each
 * one waited for all before it, up to the request timeout, and the pool stayed
 * saturated. Here a request that cannot start soon is refused within
 * `waitMs`, in time for its client to retry elsewhere, and the statements
 * running at once, which bound the Postgres CPU the API takes from ingest,
 * are at most `concurrency`.
 */
export function createReadGate(
  { concurrency, queue, waitMs }: { concurrency: number; queue: number; waitMs: number },
): ReadGate {
  let running = 0;
  const waiters: { admit: (ok: boolean) => void; timer: ReturnType<typeof setTimeout> }[] = [];
  return {
    enter() {
      if (running < concurrency) {
        running++;
        return Promise.resolve(true);
      }
      if (waiters.length >= queue) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const waiter = {
          admit: resolve,
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            resolve(false);
          }, waitMs),
        };
        waiters.push(waiter);
      });
    },
    leave() {
      const next = waiters.shift();
      if (!next) {
        running--;
        return;
      }
      // The place passes straight to the next waiter.
      clearTimeout(next.timer);
      next.admit(true);
    },
  };
}
