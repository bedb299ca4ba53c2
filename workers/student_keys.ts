import type { StudentKeyCache } from "../db/mod.ts";

// A Map entry and a string header, beyond the string's characters.
const ENTRY_BYTES = 64;

/**
 * The dictionary keys of the students a writer committed, bounded by the
 * bytes they take, not by their count: 200k keys were ~16 MiB with ids of
 * 15-40 characters and ~100 MiB with valid 128-emoji ids, past the writer's
 * heap cap. Characters count 2 bytes (V8 stores non-Latin-1 strings so). Past
 * the budget the memory starts over; a forgotten key is only looked up again.
 */
export class StudentKeys implements StudentKeyCache {
  readonly maxBytes: number;
  #keys = new Map<string, number>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** The bytes the remembered keys take, as estimated. */
  get bytes(): number {
    return this.#bytes;
  }

  get(name: string): number | undefined {
    return this.#keys.get(name);
  }

  set(name: string, key: number): void {
    const bytes = name.length * 2 + ENTRY_BYTES;
    if (this.#bytes + bytes > this.maxBytes) {
      this.#keys = new Map();
      this.#bytes = 0;
    }
    this.#keys.set(name, key);
    this.#bytes += bytes;
  }
}
