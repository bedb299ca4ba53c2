// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * What bench:ingest, bench:api and bench:storage measured on 0001:
 *
 * - `results` keyed (exam, student) did not keep its pages full: two writers
 *   insert the same exams at once, each half of the students, so every insert
 *   lands between the other writer's keys and splits pages in half (35.6 bytes
 *   per result in the key alone). And `/students/{id}` under a prepared
 *   (generic) plan walked the primary key by `exam > $after` filtering on
 *   student, hundreds of pages per request. Keyed (student, exam) again, a
 *   student's page is one range of the key in exam order, and the non-unique
 *   index on exam is small thanks to B-tree deduplication (an exam's ~500
 *   entries share one key, and exams arrive in order).
 * - `student_totals` is updated by every batch that touches a student. At
 *   fillfactor 50 the new versions fit on their page (HOT updates, no new index
 *   entries) and pruning reclaims the old ones; vacuumed after a fixed number
 *   of dead rows rather than a share of the table.
 * - `apply_score_ids` takes the students a writer already knows as their 4-byte
 *   keys and only the new names as text, and returns the keys of the new names,
 *   so that a writer sends and Postgres parses and looks up each name once.
 *   The old score of each row is one probe of the key (a LATERAL with LIMIT):
 *   on 0001 a 50k-row batch got a merge join that read the whole key.
 *   `apply_scores` stays, with the same meaning, on top of it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE results DROP CONSTRAINT results_pkey`.execute(db);
  await sql`DROP INDEX results_student`.execute(db);
  await sql`ALTER TABLE results ADD PRIMARY KEY (student, exam)`.execute(db);
  await sql`CREATE INDEX results_exam ON results (exam)`.execute(db);
  await sql`
    ALTER TABLE student_totals SET (
      fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000
    )`.execute(db);

  // The rows are coalesced (one per student and exam) and every student in them
  // belongs to this writer, so reading the old scores and then upserting cannot
  // race another writer. A student is either a key (> 0) or -k for the k-th
  // (1-based) of p_new_names. Aggregates move by the difference between the new
  // and the old score, which makes applying the same rows twice a no-op.
  await sql`
    CREATE FUNCTION apply_score_ids(
      p_writer int2, p_new_names text[], p_students int4[], p_exams int4[], p_scores float8[],
      p_q_ids text[], p_q_reasons text[], p_q_raw text[]
    ) RETURNS int4[] LANGUAGE plpgsql AS $fn$
    DECLARE
      v_new int4[] := '{}';
    BEGIN
      IF cardinality(p_new_names) > 0 THEN
        INSERT INTO students (name)
        SELECT n FROM unnest(p_new_names) AS n
        ON CONFLICT (name) DO NOTHING;
        SELECT array_agg(s.id ORDER BY u.k) INTO v_new
        FROM unnest(p_new_names) WITH ORDINALITY AS u(name, k)
        JOIN students s ON s.name = u.name;
      END IF;

      WITH input AS (
        SELECT CASE WHEN u.student > 0 THEN u.student ELSE v_new[-u.student] END AS student,
               u.exam, u.score
        FROM unnest(p_students, p_exams, p_scores) AS u(student, exam, score)
      ), upserted AS (
        INSERT INTO results (student, exam, score)
        SELECT student, exam, score FROM input ORDER BY student, exam
        ON CONFLICT (student, exam) DO UPDATE SET score = excluded.score
        WHERE results.score IS DISTINCT FROM excluded.score
      ), delta AS (
        -- The old score, as of the statement's snapshot (before the upsert): one
        -- probe of the key per row. A LATERAL with LIMIT is never made a merge
        -- join that reads the whole key, as a plain join of a large batch was.
        SELECT i.student, i.exam, i.score - coalesce(o.score, 0) AS dsum,
               (o.score IS NULL)::int4 AS dcount
        FROM input i LEFT JOIN LATERAL (
          SELECT r.score FROM results r
          WHERE r.student = i.student AND r.exam = i.exam LIMIT 1
        ) o ON true
        WHERE o.score IS NULL OR o.score <> i.score
      ), per_student AS (
        INSERT INTO student_totals AS t (student, count, sum)
        SELECT student, sum(dcount), sum(dsum) FROM delta GROUP BY student ORDER BY student
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
      RETURN v_new;
    END
    $fn$`.execute(db);

  // 0001's signature, for callers that only have names.
  await sql`
    CREATE OR REPLACE FUNCTION apply_scores(
      p_writer int2, p_names text[], p_exams int4[], p_scores float8[],
      p_q_ids text[], p_q_reasons text[], p_q_raw text[]
    ) RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE
      v_names text[];
      v_students int4[];
    BEGIN
      WITH distinct_names AS (
        SELECT name, row_number() OVER ()::int4 AS k
        FROM (SELECT DISTINCT name FROM unnest(p_names) AS name) d
      )
      SELECT (SELECT array_agg(name ORDER BY k) FROM distinct_names),
             (SELECT array_agg(-d.k ORDER BY u.i)
              FROM unnest(p_names) WITH ORDINALITY AS u(name, i)
              JOIN distinct_names d ON d.name = u.name)
      INTO v_names, v_students;
      PERFORM apply_score_ids(p_writer, coalesce(v_names, '{}'), coalesce(v_students, '{}'),
        p_exams, p_scores, p_q_ids, p_q_reasons, p_q_raw);
    END
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  // 0001's apply_scores, as it was.
  await sql`
    CREATE OR REPLACE FUNCTION apply_scores(
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
  await sql`DROP FUNCTION apply_score_ids`.execute(db);
  await sql`ALTER TABLE student_totals RESET (
    fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)`.execute(db);
  await sql`DROP INDEX results_exam`.execute(db);
  await sql`ALTER TABLE results DROP CONSTRAINT results_pkey`.execute(db);
  await sql`ALTER TABLE results ADD PRIMARY KEY (exam, student)`.execute(db);
  await sql`CREATE INDEX results_student ON results (student)`.execute(db);
}
