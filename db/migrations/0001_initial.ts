// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * The schema is shaped by the four questions the service answers:
 *
 * - `students` is an insert-only dictionary from studentId to a 4-byte key, so
 *   that each result row stores two int4 and a float8 instead of the id text.
 *   Its collation is "C" so that studentIds sort by their UTF-8 bytes.
 * - `results` holds one row per (student, exam). Its primary key leads with
 *   exam because exams arrive over time: inserts land at the right edge of the
 *   index and its pages stay full, where a student-first key would split pages
 *   all over. It answers an exam's results. A non-unique index on student alone
 *   answers a student's results and stays small thanks to B-tree deduplication
 *   (a student's ~50 entries share one key).
 * - `student_totals` keeps a student's running count and sum. A student is owned
 *   by exactly one writer, so these rows are never contended.
 * - `exam_totals` keeps an exam's running count and sum as one partial row per
 *   writer: writers never wait on each other's locks, readers add the parts up.
 *
 * `student` is the distribution column for a Citus-style sharding by student:
 * `results` and `student_totals` are co-located on it, `students` is the
 * dictionary (a reference table there).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE students (
      id int4 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      name text COLLATE "C" NOT NULL UNIQUE
    )`.execute(db);
  await sql`
    CREATE TABLE results (
      student int4 NOT NULL,
      exam int4 NOT NULL,
      score float8 NOT NULL,
      PRIMARY KEY (exam, student)
    )`.execute(db);
  await sql`CREATE INDEX results_student ON results (student)`.execute(db);
  await sql`
    CREATE TABLE student_totals (
      student int4 PRIMARY KEY,
      count int4 NOT NULL,
      sum float8 NOT NULL
    )`.execute(db);
  await sql`
    CREATE TABLE exam_totals (
      exam int4 NOT NULL,
      writer int2 NOT NULL,
      count int4 NOT NULL,
      sum float8 NOT NULL,
      PRIMARY KEY (exam, writer)
    )`.execute(db);
  await sql`
    CREATE TABLE ingest_checkpoint (
      feed text PRIMARY KEY,
      last_event_id text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`
    CREATE TABLE quarantine (
      id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      received_at timestamptz NOT NULL DEFAULT now(),
      event_id text,
      reason text NOT NULL,
      raw text NOT NULL
    )`.execute(db);
  // A replay after a crash re-sends quarantined events; this keeps one row each.
  await sql`
    CREATE UNIQUE INDEX quarantine_replay ON quarantine (event_id, md5(raw))
    WHERE event_id IS NOT NULL`.execute(db);

  // Applies one writer's batch in one round trip. The input is coalesced (one
  // row per student and exam), and every student in it belongs to this writer,
  // so reading the old scores and then upserting cannot race another writer.
  // Aggregates move by the difference between the new and the old score, which
  // makes applying the same batch twice a no-op.
  await sql`
    CREATE FUNCTION apply_scores(
      p_writer int2, p_names text[], p_exams int4[], p_scores float8[],
      p_q_ids text[], p_q_reasons text[], p_q_raw text[]
    ) RETURNS void LANGUAGE plpgsql AS $fn$
    BEGIN
      INSERT INTO students (name)
      SELECT DISTINCT n FROM unnest(p_names) AS n
      WHERE NOT EXISTS (SELECT 1 FROM students s WHERE s.name = n)
      ON CONFLICT (name) DO NOTHING;

      WITH input AS (
        SELECT s.id AS student, u.exam, u.score
        FROM unnest(p_names, p_exams, p_scores) AS u(name, exam, score)
        JOIN students s ON s.name = u.name
      ), old AS (
        SELECT r.student, r.exam, r.score
        FROM results r JOIN input i ON r.exam = i.exam AND r.student = i.student
      ), upserted AS (
        INSERT INTO results (student, exam, score)
        SELECT student, exam, score FROM input ORDER BY exam, student
        ON CONFLICT (exam, student) DO UPDATE SET score = excluded.score
        WHERE results.score IS DISTINCT FROM excluded.score
      ), delta AS (
        SELECT i.student, i.exam, i.score - coalesce(o.score, 0) AS dsum,
               (o.student IS NULL)::int4 AS dcount
        FROM input i LEFT JOIN old o ON o.student = i.student AND o.exam = i.exam
        WHERE o.student IS NULL OR o.score IS DISTINCT FROM i.score
      ), per_student AS (
        INSERT INTO student_totals AS t (student, count, sum)
        SELECT student, sum(dcount), sum(dsum) FROM delta GROUP BY student
        ON CONFLICT (student) DO UPDATE
        SET count = t.count + excluded.count, sum = t.sum + excluded.sum
      )
      INSERT INTO exam_totals AS t (exam, writer, count, sum)
      SELECT exam, p_writer, sum(dcount), sum(dsum) FROM delta GROUP BY exam
      ON CONFLICT (exam, writer) DO UPDATE
      SET count = t.count + excluded.count, sum = t.sum + excluded.sum;

      INSERT INTO quarantine (event_id, reason, raw)
      SELECT * FROM unnest(p_q_ids, p_q_reasons, p_q_raw)
      ON CONFLICT (event_id, md5(raw)) WHERE event_id IS NOT NULL DO NOTHING;
    END
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION apply_scores`.execute(db);
  for (
    const table of [
      "quarantine",
      "ingest_checkpoint",
      "exam_totals",
      "student_totals",
      "results",
      "students",
    ]
  ) {
    await db.schema.dropTable(table).execute();
  }
}
