import type { Versioned } from "../db/mod.ts";

/**
 * The latest body of each versioned response, by path and query, up to
 * `maxChars` in all; the least recently used go first. An entry is served
 * only while the database still reports its version, so it is never stale.
 */
export interface ResponseCache {
  get(key: string): Versioned<unknown> | undefined;
  set(key: string, value: Versioned<unknown>): void;
}

export function createResponseCache(maxChars: number): ResponseCache {
  const entries = new Map<string, Versioned<unknown>>();
  let size = 0;
  const cost = (key: string, value: Versioned<unknown>) => key.length + value.body.length;
  return {
    get(key) {
      const value = entries.get(key);
      if (value) {
        // Map keeps insertion order: re-inserting marks the entry as recent.
        entries.delete(key);
        entries.set(key, value);
      }
      return value;
    },
    set(key, value) {
      const old = entries.get(key);
      if (old) {
        size -= cost(key, old);
        entries.delete(key);
      }
      if (cost(key, value) > maxChars) return;
      entries.set(key, value);
      size += cost(key, value);
      for (const [k, v] of entries) {
        if (size <= maxChars) break;
        entries.delete(k);
        size -= cost(k, v);
      }
    },
  };
}
