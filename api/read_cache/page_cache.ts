import type { Versioned } from "../../db/mod.ts";
import type { ChangeFeed } from "./change_feed.ts";

/** What a cached body depends on: `student:<id>` or `exam:<n>`. */
export type Dependency = `student:${string}` | `exam:${number}`;

/** What answering a page took: see `PageCache.answered`. */
export type AnswerSource = "memory" | "version" | "read";

/** A cached body and whether it may be sent without asking the database. */
export interface CacheHit<T> {
  value: Versioned<T>;
  /** No change to its dependency was reported since it was read. */
  current: boolean;
}

/**
 * The latest body of each versioned response, by path and query, up to
 * `maxBytes` of heap in all; the least recently used go first. Without a change feed
 * an entry is served only while the database still reports its version. With
 * one, an entry read while its dependency did not change is `current` until
 * the feed reports a change to it.
 */
export interface PageCache {
  get<T>(key: string, dependency: Dependency): CacheHit<T> | undefined;
  /**
   * Pages answered, by what they cost: nothing but memory, a version lookup,
   * or a read of the page; counted by whoever answers.
   */
  readonly answered: Record<AnswerSource, number>;
  /**
   * The body stored under `key` and what it depends on, if it is `current`:
   * for answering a request that was routed and validated once before.
   */
  current(key: string): { value: Versioned<unknown>; dependency: Dependency } | undefined;
  /** Taken before reading the database and given back to `set`. */
  generation(dependency: Dependency): number;
  /**
   * Stores a body read after `generation(dependency)` returned `generation`;
   * it is `current` only if no change was reported in between.
   */
  set(key: string, value: Versioned<unknown>, dependency: Dependency, generation: number): void;
}

/** What V8 stores a string's characters in: one byte each if all are below U+0100. */
const heapBytes = (text: string) => TWO_BYTE.test(text) ? 2 * text.length : text.length;
const TWO_BYTE = /[\u0100-\uffff]/;

const STUDENT = "student:";
const EXAM = "exam:";
/** What a tracked exam number counts for against `maxTrackedChars`. */
const EXAM_CHARS = 8;

interface Entry {
  value: Versioned<unknown>;
  dependency: Dependency;
  generation: number;
}

export function createPageCache(
  { maxBytes, changes, maxTrackedChars = 4 * 1024 * 1024 }: {
    /**
     * What keys and bodies may take of the heap: V8 keeps a string whose
     * characters are all below U+0100 in one byte each, any other in two.
     */
    maxBytes: number;
    changes?: ChangeFeed;
    /**
     * The characters of the dependencies whose last change is remembered (a
     * studentId's length, 8 per exam); past it, all count as changed. Counted in
     * characters, not entries: 100k tracked 500-byte studentIds were 50 MB.
     */
    maxTrackedChars?: number;
  },
): PageCache {
  const entries = new Map<string, Entry>();
  let size = 0;
  const cost = (key: string, value: Versioned<unknown>) => heapBytes(key) + heapBytes(value.body);

  // Generation of a dependency: the value of `clock` when it last changed, or
  // `floor` if it has not changed since the maps were last emptied. Both only
  // grow, so an unchanged generation means no change in between. Keyed by the
  // bare studentId and exam number: a commit reports thousands of them.
  const studentChangedAt = new Map<string, number>();
  const examChangedAt = new Map<number, number>();
  let trackedChars = 0;
  let clock = 0;
  let floor = 0;
  const generation = (dependency: Dependency) =>
    (dependency.startsWith(STUDENT)
      ? studentChangedAt.get(dependency.slice(STUDENT.length))
      : examChangedAt.get(Number(dependency.slice(EXAM.length)))) ?? floor;
  const forget = () => {
    studentChangedAt.clear();
    examChangedAt.clear();
    trackedChars = 0;
    floor = clock;
  };
  changes?.subscribe((changed) => {
    clock++;
    if (changed === "everything") return forget();
    for (const student of changed.students) {
      if (!studentChangedAt.has(student)) trackedChars += student.length;
      studentChangedAt.set(student, clock);
    }
    for (const exam of changed.exams) {
      if (!examChangedAt.has(exam)) trackedChars += EXAM_CHARS;
      examChangedAt.set(exam, clock);
    }
    if (trackedChars > maxTrackedChars) forget();
  });

  const isCurrent = (entry: Entry) =>
    changes?.live === true && entry.generation === generation(entry.dependency);
  // Map keeps insertion order: re-inserting marks the entry as recent.
  const touch = (key: string, entry: Entry) => {
    entries.delete(key);
    entries.set(key, entry);
  };

  return {
    answered: { memory: 0, version: 0, read: 0 },
    get<T>(key: string, dependency: Dependency) {
      const entry = entries.get(key);
      if (!entry) return undefined;
      touch(key, entry);
      const current = entry.dependency === dependency && isCurrent(entry);
      return { value: entry.value as Versioned<T>, current };
    },
    current(key) {
      const entry = entries.get(key);
      if (!entry || !isCurrent(entry)) return undefined;
      touch(key, entry);
      return entry;
    },
    generation,
    set(key, value, dependency, readAt) {
      const old = entries.get(key);
      if (old) {
        size -= cost(key, old.value);
        entries.delete(key);
      }
      if (cost(key, value) > maxBytes) return;
      // -1 is no generation: such an entry is never current.
      const stored = readAt === generation(dependency) ? readAt : -1;
      entries.set(key, { value, dependency, generation: stored });
      size += cost(key, value);
      for (const [k, v] of entries) {
        if (size <= maxBytes) break;
        entries.delete(k);
        size -= cost(k, v.value);
      }
    },
  };
}
