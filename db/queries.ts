import { type Kysely, type RawBuilder, sql } from "kysely";
import { createReadGate } from "./_read_gate.ts";
import { readErrorCode } from "./errors.ts";
import { ReadError } from "./read_error.ts";
import type { Result } from "./result.ts";
import {
  type ExamHistogram,
  type ExamPage,
  type ExamResults,
  type ExamStanding,
  type ExamTop,
  EXCERPT_CHARS,
  type JsonText,
  type QuarantinePage,
  type StudentPage,
  type StudentResults,
  type StudentTrend,
  type Totals,
  type Versioned,
} from "./response_types.ts";
import type { Database } from "./schema.ts";

/**
 * Which results a batch of `Queries.results()` reads, in which order, and the
 * key it starts after: every result by studentId (in UTF-8 byte order) then
 * exam, one student's by exam, or one exam's by studentId.
 */
export type ResultScope =
  | { of: "all"; after?: { studentId: string; exam: number } }
  | { of: "student"; studentId: string; after?: number }
  | { of: "exam"; exam: number; after?: string };

/**
 * A student's count, sum and version, from all of their results: a lateral
 * subquery over the `students` key `id`. The version is a digest of every
 * (exam, score): equal versions mean equal results, whatever happened between.
 * The sum runs in exam order, so that the same results give the same last
 * digit of the average under any plan. Its cost grows with the student's
 * results (one range of the primary key): ~50 per student in the demo feed.
 * Outputs a query does not use are not computed (Postgres replaces them with
 * NULL), so the lists pay for no digest.
 */
const studentTotals = (id: RawBuilder<unknown>) =>
  sql<{ count: string; sum: number; version: string }>`
    SELECT count(*) AS count, sum(score ORDER BY exam) AS sum,
           md5(string_agg(exam || ':' || score::text, ',' ORDER BY exam)) AS version
    FROM results WHERE student = ${id}`;

/** Limits that bound every read. */
export interface QueriesOptions {
  /** A page of an exam's results ends early once its JSON would pass this size. */
  maxPageBytes?: number;
  /**
   * Statements of the API running at once (default 2). With `totals()`'s own
   * one, the pool under `db` needs this many connections plus one.
   */
  maxConcurrentReads?: number;
  /** Statements waiting for one of those places; more are refused at once (default 32). */
  maxQueuedReads?: number;
  /** How long a statement waits for a place before it is refused (default 100 ms). */
  maxQueueMs?: number;
}

/** Every query of the read side. */
export interface Queries {
  /** With `prefix`, only the students whose studentId starts with it. */
  students(
    page: { after?: string; limit: number; prefix?: string },
  ): Promise<JsonText<StudentPage>>;
  student(
    studentId: string,
    page: { after?: number; limit: number },
  ): Promise<Versioned<StudentResults> | null>;
  studentVersion(studentId: string): Promise<string | null>;
  studentTrend(studentId: string, last: number): Promise<JsonText<StudentTrend> | null>;
  exams(page: { after?: number; limit: number }): Promise<JsonText<ExamPage>>;
  exam(
    exam: number,
    page: { after?: string; limit: number },
  ): Promise<Versioned<ExamResults> | null>;
  examVersion(exam: number): Promise<string | null>;
  examHistogram(exam: number, bins: number): Promise<JsonText<ExamHistogram> | null>;
  examTop(exam: number, n: number): Promise<JsonText<ExamTop> | null>;
  examStanding(exam: number, studentId: string): Promise<JsonText<ExamStanding> | null>;
  /**
   * Up to `limit` results of `scope` after its key, in its order: a keyset
   * batch, one statement whose cost grows with `limit`, not with what came before.
   */
  results(scope: ResultScope, limit: number): Promise<Result[]>;
  /** `after`: a decimal int8, the `id` of the last event of the previous page. */
  quarantine(page: { after?: string; limit: number }): Promise<JsonText<QuarantinePage>>;
  totals(): Promise<Totals>;
}

/**
 * Builds the read side over `db`. Each method is one statement, so the totals
 * and the page of a response come from one snapshot and always agree. Errors
 * are thrown as `ReadError`.
 */
export function createQueries(
  db: Kysely<Database>,
  {
    maxPageBytes = 1 << 20,
    maxConcurrentReads = 2,
    maxQueuedReads = 32,
    maxQueueMs = 100,
  }: QueriesOptions = {},
): Queries {
  const reads = createReadGate({
    concurrency: maxConcurrentReads,
    queue: maxQueuedReads,
    waitMs: maxQueueMs,
  });
  // /stats must answer while the reads are saturated: its counts have a place
  // of their own, and a caller that shares one read (see api/operations.ts).
  const counts = createReadGate({ concurrency: 1, queue: 0, waitMs: 0 });
  async function rows<R>(query: RawBuilder<R>, gate = reads): Promise<R[]> {
    if (!await gate.enter()) throw new ReadError("busy");
    try {
      return (await query.execute(db)).rows;
    } catch (error) {
      throw new ReadError(readErrorCode(error), { cause: error });
    } finally {
      gate.leave();
    }
  }
  const first = async <R>(query: RawBuilder<R>) => (await rows(query))[0];

  // Each page reads one row more than it returns, to learn whether there is a
  // next page; `n` numbers the rows of the page, `keep` marks those returned.
  return {
    async students({ after = "", limit, prefix = "" }) {
      // A prefix is a range of the unique index on name (collation "C"):
      // [prefix, its successor), never a scan filtered by LIKE.
      const below = prefixEnd(prefix);
      const row = await first(sql<{ items: string; next: string | null }>`
        SELECT coalesce(string_agg(
                 '{"studentId":' || to_json(name)::text || ',"count":' || count
                 || ',"average":' || (sum / count)::text || '}', ',' ORDER BY n
               ) FILTER (WHERE n <= ${limit}::int4), '') AS items,
               CASE WHEN count(*) > ${limit}::int4
                 THEN max(name) FILTER (WHERE n <= ${limit}::int4) END AS next
        FROM (
          -- Every name in the dictionary has results: it is added in the
          -- transaction that stores them.
          SELECT s.name, a.count, a.sum, row_number() OVER (ORDER BY s.name) AS n
          FROM (
            SELECT id, name FROM students
            WHERE name > ${after}::text AND name >= ${prefix}::text
              AND ${below === null ? sql`true` : sql`name < ${below}::text`}
            ORDER BY name LIMIT ${limit}::int4 + 1
          ) s
          CROSS JOIN LATERAL (${studentTotals(sql.ref("s.id"))}) a
          ORDER BY s.name
        ) p`);
      return `{"students":[${row.items}],"next":${json(row.next)}}` as JsonText<StudentPage>;
    },

    async student(studentId, { after = -1, limit }) {
      const row = await first(sql<{ body: string; version: string }>`
        SELECT '{"studentId":' || to_json(s.name)::text || ',"count":' || t.count
               || ',"average":' || (t.sum / t.count)::text
               || ',"results":[' || coalesce(p.items, '') || '],"next":'
               || coalesce(p.next::text, 'null') || '}' AS body,
               t.version
        FROM students s
        CROSS JOIN LATERAL (${studentTotals(sql.ref("s.id"))}) t
        CROSS JOIN LATERAL (
          SELECT string_agg('{"exam":' || r.exam || ',"score":' || r.score::text || '}', ','
                            ORDER BY r.exam) FILTER (WHERE r.n <= ${limit}::int4) AS items,
                 CASE WHEN count(*) > ${limit}::int4
                   THEN max(r.exam) FILTER (WHERE r.n <= ${limit}::int4) END AS next
          FROM (
            SELECT exam, score, row_number() OVER (ORDER BY exam) AS n
            FROM results
            WHERE student = s.id AND exam > ${after}::int4
            ORDER BY exam LIMIT ${limit}::int4 + 1
          ) r
        ) p
        WHERE s.name = ${studentId}::text AND t.count > 0`);
      return row ? { body: row.body as JsonText<StudentResults>, version: row.version } : null;
    },

    async studentVersion(studentId) {
      const row = await first(sql<{ version: string }>`
        SELECT t.version
        FROM students s CROSS JOIN LATERAL (${studentTotals(sql.ref("s.id"))}) t
        WHERE s.name = ${studentId}::text AND t.count > 0`);
      return row?.version ?? null;
    },

    async studentTrend(studentId, last) {
      const row = await first(sql<{ body: string }>`
        SELECT '{"studentId":' || to_json(s.name)::text || ',"count":' || t.count
               || ',"average":' || (t.sum / t.count)::text
               || ',"results":[' || string_agg('{"exam":' || r.exam || ',"score":'
                                               || r.score::text || '}', ',' ORDER BY r.exam)
               || '],"recentCount":' || count(*)
               || ',"recentAverage":' || avg(r.score)::text
               || ',"slope":' || coalesce(regr_slope(r.score, r.position)::text, 'null')
               || '}' AS body
        FROM students s
        CROSS JOIN LATERAL (${studentTotals(sql.ref("s.id"))}) t
        CROSS JOIN LATERAL (
          SELECT exam, score, row_number() OVER (ORDER BY exam) AS position
          FROM (
            SELECT exam, score FROM results WHERE student = s.id
            ORDER BY exam DESC LIMIT ${last}::int4
          ) recent
        ) r
        WHERE s.name = ${studentId}::text
        GROUP BY s.name, t.count, t.sum`);
      return (row?.body ?? null) as JsonText<StudentTrend> | null;
    },

    async exams({ after = -1, limit }) {
      const row = await first(sql<{ items: string; next: number | null }>`
        SELECT coalesce(string_agg(
                 '{"exam":' || exam || ',"count":' || count || ',"average":'
                 || (sum / count)::text || '}', ',' ORDER BY exam
               ) FILTER (WHERE n <= ${limit}::int4), '') AS items,
               CASE WHEN count(*) > ${limit}::int4
                 THEN max(exam) FILTER (WHERE n <= ${limit}::int4) END AS next
        FROM (
          SELECT exam, sum(count) AS count, sum(sum) AS sum,
                 row_number() OVER (ORDER BY exam) AS n
          FROM exam_totals
          WHERE exam > ${after}::int4
          GROUP BY exam HAVING sum(count) > 0
          ORDER BY exam LIMIT ${limit}::int4 + 1
        ) e`);
      return `{"exams":[${row.items}],"next":${json(row.next)}}` as JsonText<ExamPage>;
    },

    async exam(exam, { after = "", limit }) {
      // The page also ends once its JSON passes maxPageBytes (after at least
      // one row), so that no response grows without bound; `next` still points
      // at its last row, and a client reading every page reads everything.
      const row = await first(sql<{ body: string; version: string }>`
        SELECT '{"exam":' || ${exam}::int4 || ',"count":' || tot.count
               || ',"average":' || (tot.sum / tot.count)::text
               || ',"results":[' || coalesce(p.items, '') || '],"next":'
               || coalesce(to_json(p.next)::text, 'null') || '}' AS body,
               tot.version
        FROM (
          SELECT sum(count) AS count, sum(sum) AS sum,
                 string_agg(writer || '.' || xmin::text, '-' ORDER BY writer) AS version
          FROM exam_totals WHERE exam = ${exam}::int4
        ) tot
        CROSS JOIN LATERAL (
          SELECT string_agg(item, ',' ORDER BY n) FILTER (WHERE keep) AS items,
                 CASE WHEN bool_or(NOT keep) THEN max(name) FILTER (WHERE keep) END AS next
          FROM (
            SELECT name, item, n,
                   n <= ${limit}::int4 AND (n = 1 OR bytes <= ${maxPageBytes}::int4) AS keep
            FROM (
              SELECT name, item, row_number() OVER w AS n,
                     sum(octet_length(item) + 1) OVER w AS bytes
              FROM (
                SELECT l.name,
                       '{"studentId":' || to_json(l.name)::text || ',"score":'
                       || l.score::text || '}' AS item
                FROM (
                  SELECT name, score
                  FROM (
                    -- One index lookup per result: joined, the planner hashes
                    -- the whole dictionary for a few hundred ids (7x slower).
                    -- OFFSET 0 keeps the lookup from being evaluated twice.
                    SELECT (SELECT s.name FROM students s WHERE s.id = r.student) AS name,
                           r.score
                    FROM results r WHERE r.exam = ${exam}::int4
                    OFFSET 0
                  ) named
                  WHERE name > ${after}::text
                  ORDER BY name LIMIT ${limit}::int4 + 1
                ) l
              ) items
              WINDOW w AS (ORDER BY name)
            ) sized
          ) marked
        ) p
        WHERE tot.count > 0`);
      return row ? { body: row.body as JsonText<ExamResults>, version: row.version } : null;
    },

    async examVersion(exam) {
      const row = await first(sql<{ version: string | null }>`
        SELECT string_agg(writer || '.' || xmin::text, '-' ORDER BY writer) AS version
        FROM exam_totals WHERE exam = ${exam}::int4
        HAVING sum(count) > 0`);
      return row?.version ?? null;
    },

    async examHistogram(exam, bins) {
      // width_bucket puts a score of exactly 1 past the last bin: the last
      // bin is closed so that it counts there.
      const row = await first(sql<{ body: string }>`
        SELECT '{"exam":' || ${exam}::int4 || ',"count":' || sum(coalesce(h.count, 0))
               || ',"bins":[' || string_agg(
                 '{"from":' || ((b - 1)::float8 / ${bins}::int4)::text
                 || ',"to":' || (b::float8 / ${bins}::int4)::text
                 || ',"count":' || coalesce(h.count, 0) || '}', ',' ORDER BY b)
               || ']}' AS body
        FROM generate_series(1, ${bins}::int4) AS b
        LEFT JOIN (
          SELECT least(width_bucket(score, 0, 1, ${bins}::int4), ${bins}::int4) AS bin,
                 count(*) AS count
          FROM results WHERE exam = ${exam}::int4
          GROUP BY 1
        ) h ON h.bin = b
        HAVING sum(coalesce(h.count, 0)) > 0`);
      return (row?.body ?? null) as JsonText<ExamHistogram> | null;
    },

    async examTop(exam, n) {
      const row = await first(sql<{ body: string }>`
        SELECT '{"exam":' || ${exam}::int4 || ',"count":' || tot.count || ',"top":['
               || coalesce(best.items, '') || ']}' AS body
        FROM (SELECT sum(count) AS count FROM exam_totals WHERE exam = ${exam}::int4) tot
        CROSS JOIN LATERAL (
          SELECT string_agg('{"studentId":' || to_json(name)::text || ',"score":'
                            || score::text || '}', ',' ORDER BY score DESC, name) AS items
          FROM (
            SELECT s.name, t.score
            FROM (
              SELECT student, score FROM results WHERE exam = ${exam}::int4
              ORDER BY score DESC FETCH FIRST (${n}::int4) ROWS WITH TIES
            ) t
            JOIN students s ON s.id = t.student
            ORDER BY t.score DESC, s.name LIMIT ${n}::int4
          ) ranked
        ) best
        WHERE tot.count > 0`);
      return (row?.body ?? null) as JsonText<ExamTop> | null;
    },

    async examStanding(exam, studentId) {
      const row = await first(sql<{ body: string }>`
        SELECT '{"exam":' || ${exam}::int4 || ',"studentId":' || to_json(s.name)::text
               || ',"score":' || mine.score::text
               || ',"rank":' || (1 + count(*) FILTER (WHERE r.score > mine.score))
               || ',"count":' || count(*)
               || ',"percentile":'
               || round(100.0 * count(*) FILTER (WHERE r.score <= mine.score) / count(*), 2)::float8
               || '}' AS body
        FROM students s
        JOIN results mine ON mine.student = s.id AND mine.exam = ${exam}::int4
        JOIN results r ON r.exam = ${exam}::int4
        WHERE s.name = ${studentId}::text
        GROUP BY s.name, mine.score`);
      return (row?.body ?? null) as JsonText<ExamStanding> | null;
    },

    results(scope, limit) {
      const n = sql`${limit}::int4`;
      if (scope.of === "student") {
        return rows(sql<Result>`
          SELECT s.name AS "studentId", r.exam, r.score
          FROM students s JOIN results r ON r.student = s.id
          WHERE s.name = ${scope.studentId}::text AND r.exam > ${scope.after ?? -1}::int4
          ORDER BY r.exam LIMIT ${n}`);
      }
      if (scope.of === "exam") {
        // As in exam(): one index lookup of the name per result.
        return rows(sql<Result>`
          SELECT name AS "studentId", ${scope.exam}::int4 AS exam, score
          FROM (
            SELECT (SELECT s.name FROM students s WHERE s.id = r.student) AS name, r.score
            FROM results r WHERE r.exam = ${scope.exam}::int4
            OFFSET 0
          ) named
          WHERE name > ${scope.after ?? ""}::text
          ORDER BY name LIMIT ${n}`);
      }
      // The next `limit` students by name, and of each the results past the
      // key, by the primary key: never more than `limit` of either.
      const { studentId = "", exam = -1 } = scope.after ?? {};
      return rows(sql<Result>`
        SELECT s.name AS "studentId", r.exam, r.score
        FROM (
          SELECT id, name FROM students WHERE name >= ${studentId}::text
          ORDER BY name LIMIT ${n}
        ) s
        CROSS JOIN LATERAL (
          SELECT exam, score FROM results
          WHERE student = s.id AND (s.name > ${studentId}::text OR exam > ${exam}::int4)
          ORDER BY exam LIMIT ${n}
        ) r
        ORDER BY s.name, r.exam LIMIT ${n}`);
    },

    async quarantine({ after, limit }) {
      const row = await first(sql<{ items: string; next: string | null }>`
        SELECT coalesce(string_agg(
                 '{"id":"' || id || '","receivedAt":' || to_json(received_at)::text
                 || ',"eventId":' || coalesce(to_json(left(event_id, ${EXCERPT_CHARS}))::text, 'null')
                 || ',"reason":' || to_json(reason)::text
                 || ',"excerpt":' || to_json(left(raw, ${EXCERPT_CHARS}))::text || '}',
                 ',' ORDER BY id DESC
               ) FILTER (WHERE n <= ${limit}::int4), '') AS items,
               CASE WHEN count(*) > ${limit}::int4
                 THEN min(id) FILTER (WHERE n <= ${limit}::int4)::text END AS next
        FROM (
          SELECT id, received_at, event_id, reason, raw,
                 row_number() OVER (ORDER BY id DESC) AS n
          FROM (
            SELECT * FROM quarantine
            WHERE ${after === undefined ? sql`true` : sql`id < ${after}::int8`}
            ORDER BY id DESC LIMIT ${limit}::int4 + 1
          ) q
        ) p`);
      return `{"events":[${row.items}],"next":${json(row.next)}}` as JsonText<QuarantinePage>;
    },

    async totals() {
      const [row] = await rows(
        sql<{ students: string; exams: string; results: string; quarantined: string }>`
        SELECT (SELECT count(*) FROM students) AS students,
               (SELECT count(DISTINCT exam) FROM exam_totals WHERE count > 0) AS exams,
               (SELECT coalesce(sum(count), 0) FROM exam_totals) AS results,
               -- By the reason's stable code, the text before its first ": " (the
               -- message after it varies); an index-only scan of quarantine_reason.
               (SELECT coalesce(json_object_agg(code, n ORDER BY code), '{}')::text
                FROM (
                  SELECT split_part(reason, ': ', 1) AS code, sum(n) AS n
                  FROM (SELECT reason, count(*) AS n FROM quarantine GROUP BY reason) r
                  GROUP BY 1
                ) q
               ) AS quarantined`,
        counts,
      );
      return {
        students: Number(row.students),
        exams: Number(row.exams),
        results: Number(row.results),
        quarantined: JSON.parse(row.quarantined),
      };
    },
  };
}

/**
 * The least string above every string that starts with `prefix`, in UTF-8
 * byte order (which is code point order): its last code point incremented,
 * past the surrogates; null when there is none (all U+10FFFF).
 */
function prefixEnd(prefix: string): string | null {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10FFFF) {
      return points.join("") + String.fromCodePoint(last === 0xD7FF ? 0xE000 : last + 1);
    }
  }
  return null;
}

function json(value: string | number | null): string {
  return value === null ? "null" : JSON.stringify(value);
}
