/**
 * One stored result: a student's score in an exam (DESIGN.md rule 1). What
 * may be stored is defined here, beside it: ingest validates the feed's events
 * against these rules and the API its parameters, so that the two agree.
 */
export interface Result {
  studentId: string;
  exam: number;
  score: number;
}

/** The largest exam number: exams are int4 in the database. */
export const MAX_EXAM = 2147483647;

/** The longest studentId, in characters (code points). */
export const MAX_STUDENT_ID_CHARS = 128;

/**
 * C0 and C1 control characters, and DEL, which no studentId holds (Postgres
 * text cannot hold NUL, and the others only ever come from broken feeds).
 */
// deno-lint-ignore no-control-regex
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Characters that make two ids look the same, or one look like another: the
 * bidirectional controls (Unicode's Bidi_Control: ALM, LRM, RLM, the
 * embeddings, overrides and isolates) and the invisible spaces and joiners that
 * are not part of writing (ZWSP, WORD JOINER, ZWNBSP/BOM). ZWJ and ZWNJ stay:
 * emoji sequences and Persian and Indic names need them.
 */
export const INVISIBLE_CHARACTER =
  /[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;

/** Whether `id` has more than `MAX_STUDENT_ID_CHARS` code points. */
export function isTooLongStudentId(id: string): boolean {
  // Code points, not UTF-16 units; only long strings need the slower count.
  return id.length > MAX_STUDENT_ID_CHARS && [...id].length > MAX_STUDENT_ID_CHARS;
}
