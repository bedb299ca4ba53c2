/**
 * The JSON text of a `T`, built by Postgres. Postgres 12+ prints float8 in
 * its shortest exact form, so scores and averages survive the trip unchanged,
 * and the API sends the text as it is instead of parsing and re-serialising it.
 */
export type JsonText<T> = string & { readonly __json: T };

/** A student in the list of students. */
export interface StudentSummary {
  studentId: string;
  count: number;
  average: number;
}

/** One page of the students, by studentId in UTF-8 byte order. */
export interface StudentPage {
  students: StudentSummary[];
  next: string | null;
}

/** A student's totals and one page of their results, by exam. */
export interface StudentResults {
  studentId: string;
  count: number;
  average: number;
  results: { exam: number; score: number }[];
  next: number | null;
}

/** An exam in the list of exams. */
export interface ExamSummary {
  exam: number;
  count: number;
  average: number;
}

/** One page of the exams, by exam number. */
export interface ExamPage {
  exams: ExamSummary[];
  next: number | null;
}

/** An exam's totals and one page of its results, by studentId. */
export interface ExamResults {
  exam: number;
  count: number;
  average: number;
  results: { studentId: string; score: number }[];
  next: string | null;
}

/** An exam's score distribution over equal-width bins of [0, 1]. */
export interface ExamHistogram {
  exam: number;
  count: number;
  bins: { from: number; to: number; count: number }[];
}

/** An exam's best results, best first, ties by studentId. */
export interface ExamTop {
  exam: number;
  count: number;
  top: { studentId: string; score: number }[];
}

/** Where one student's result stands in an exam. */
export interface ExamStanding {
  exam: number;
  studentId: string;
  score: number;
  rank: number;
  count: number;
  percentile: number;
}

/**
 * A student's most recent exams (the highest exam numbers), oldest first:
 * `count` and `average` cover all of their results, `recent*` these.
 */
export interface StudentTrend {
  studentId: string;
  count: number;
  average: number;
  results: { exam: number; score: number }[];
  recentCount: number;
  recentAverage: number;
  slope: number | null;
}

/** A rejected event as the quarantine keeps it, cut to an excerpt. */
export interface QuarantinedEvent {
  /** The row's key, a decimal int8: the cursor of the list. */
  id: string;
  /** ISO 8601, with offset. */
  receivedAt: string;
  eventId: string | null;
  reason: string;
  excerpt: string;
}

/** One page of the quarantine, newest first. */
export interface QuarantinePage {
  events: QuarantinedEvent[];
  next: string | null;
}

/** Characters of a quarantined event's raw payload and of its SSE id that are sent. */
export const EXCERPT_CHARS = 256;

/** How much is stored, from the dictionary and the exam aggregates, not by counting results. */
export interface Totals {
  students: number;
  exams: number;
  results: number;
  /** Events in the quarantine, by reason. */
  quarantined: Record<string, number>;
}

/**
 * A response body with the version of the rows it was read from: for a
 * student, a digest of all of their results; for an exam, the transaction ids
 * (xmin) of its aggregate rows, which every write to its results updates.
 * Equal versions mean an equal body.
 */
export interface Versioned<T> {
  body: JsonText<T>;
  version: string;
}
