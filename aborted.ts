/**
 * Resolves once `signal` aborts (at once if it has), to false, so that it can race
 * work that resolves true; it never rejects. Ingest and the composition root both
 * race their waits against shutdown with it.
 */
export function aborted(signal: AbortSignal): Promise<false> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(false);
    signal.addEventListener("abort", () => resolve(false), { once: true });
  });
}
