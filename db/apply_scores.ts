import { type Kysely, sql } from "kysely";
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

/**
 * Applies a writer's coalesced results and quarantined events in one statement,
 * hence one transaction and one round trip (the `apply_scores` function of
 * migration 0001). Applying the same rows again leaves the same state.
 */
export async function applyScores(
  db: Kysely<Database>,
  writer: number,
  { names, exams, scores }: ScoreColumns,
  quarantine: readonly QuarantineRow[],
): Promise<void> {
  await sql`SELECT apply_scores(
    ${writer}::int2, ${names}::text[], ${exams}::int4[], ${scores}::float8[],
    ${quarantine.map((q) => q.eventId)}::text[], ${quarantine.map((q) => q.reason)}::text[],
    ${quarantine.map((q) => q.raw)}::text[]
  )`.execute(db);
}
