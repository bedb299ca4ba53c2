import { type Kysely, sql } from "kysely";
import { CHANGES_CHANNEL } from "./change_listener.ts";
import { type Fence, fenced } from "./fence.ts";
import type { Database } from "./schema.ts";

/** Columns of coalesced results: one row per (studentId, exam). */
export interface ScoreColumns {
  names: string[];
  exams: number[];
  scores: number[];
}

/** An event that failed validation, kept for people to inspect. */
export interface QuarantineRow {
  eventId: string | null;
  reason: string;
  raw: string;
}

/** Where a writer remembers the dictionary keys of the students it committed. */
export interface StudentKeyCache {
  get(name: string): number | undefined;
  set(name: string, key: number): void;
}

/**
 * Applies a writer's coalesced results and quarantined events in one statement,
 * hence one transaction and one round trip (the `apply_score_ids` function of
 * the initial migration). Applying the same rows again leaves the same state.
 * The commit is announced on `CHANGES_CHANNEL` (see `listenForChanges`).
 *
 * `keys` maps the studentIds this writer has seen committed to their 4-byte
 * keys in the `students` dictionary: those are sent as keys, only the others
 * as text, and their keys are added once the statement has committed. Keys are
 * never reused (the dictionary is insert-only), so a cached key stays right.
 *
 * With `fence`, Postgres refuses the statement (SQLSTATE SF001, meaning
 * `fenced`) unless `fence.epoch` is the feed's current leadership epoch;
 * `origin` goes with the notification, so that a listener can tell its own
 * instance's commits from others'.
 */
export async function applyScores(
  db: Kysely<Database>,
  writer: number,
  { names, exams, scores }: ScoreColumns,
  quarantine: readonly QuarantineRow[],
  keys: StudentKeyCache = new Map(),
  { fence, origin = "" }: { fence?: Fence; origin?: string } = {},
): Promise<void> {
  const students = new Int32Array(names.length);
  const newNames: string[] = [];
  const newIndex = new Map<string, number>();
  for (let i = 0; i < names.length; i++) {
    const key = keys.get(names[i]);
    if (key !== undefined) {
      students[i] = key;
      continue;
    }
    let k = newIndex.get(names[i]);
    if (k === undefined) {
      k = newNames.push(names[i]);
      newIndex.set(names[i], k);
    }
    students[i] = -k;
  }
  const { rows } = await sql<{ keys: number[] | null }>`SELECT apply_score_ids(
    ${writer}::int2, ${newNames}::text[], ${numberArray(students)}::int4[],
    ${numberArray(exams)}::int4[], ${numberArray(scores)}::float8[],
    ${quarantine.map((q) => q.eventId)}::text[], ${quarantine.map((q) => q.reason)}::text[],
    ${quarantine.map((q) => q.raw)}::text[]
  ) AS keys, pg_notify(${CHANGES_CHANNEL}, ${origin}) ${fenced(fence)}`.execute(db);
  const added = rows[0]?.keys ?? [];
  for (let k = 0; k < newNames.length && k < added.length; k++) keys.set(newNames[k], added[k]);
}

// An array literal as one string parameter: postgres.js would escape each
// element of a number[] as text, and numbers need no escaping. Number#toString
// is the shortest text that parses back to the same double, and float8in parses
// it exactly, so scores survive the trip unchanged.
function numberArray(values: ArrayLike<number>): string {
  return `{${Array.prototype.join.call(values, ",")}}`;
}
