import { setTimeout as delay } from "node:timers/promises";

/**
 * The one polling loop of the tests and benchmarks: calls `probe` every `everyMs`
 * until it returns something other than undefined or false, and returns that. After
 * `timeoutMs` it throws, naming `what` (a function can say what it saw last). A probe
 * that throws ends the wait with its error.
 */
export async function until<T>(
  what: string | (() => string),
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    await delay(everyMs);
  }
  throw new Error(`Timed out waiting for ${typeof what === "string" ? what : what()}`);
}
