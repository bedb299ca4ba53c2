// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * The schema is shaped by the four questions the service answers:
 *
 * - `students` is an insert-only dictionary from studentId to a 4-byte key, so
 *   that each result row stores two int4 and a float8 instead of the id text.
 *   Its collation is "C" so that studentIds sort by their UTF-8 bytes.
 * - `results` holds one row per (student, exam), keyed (student, exam): a
 *   student's page is one range of the key in exam order, even under a
 *   prepared (generic) plan. An exam-first key measured worse on both counts:
 *   two writers insert the same exams at once, each half of the students, so
 *   every insert landed between the other writer's keys and split pages in
 *   half; and the generic plan of a student's page walked it by exam, filtering
 *   on student. A non-unique index on exam alone answers an exam's results
 *   and stays small thanks to B-tree deduplication (an exam's ~500 entries
 *   share one key, and exams arrive in order).
 * - `student_totals` keeps a student's running count and sum. A student is owned
 *   by exactly one writer, so these rows are never contended. Every batch that
 *   touches a student updates its row: at fillfactor 50 the new versions fit on
 *   their page (HOT updates, no new index entries) and pruning reclaims the old
 *   ones; vacuumed after a fixed number of dead rows rather than a share of the
 *   table.
 * - `exam_totals` keeps an exam's running count and sum as one partial row per
 *   writer: writers never wait on each other's locks, readers add the parts up.
 *
 * `student` is the distribution column for a Citus-style sharding by student:
 * `results` and `student_totals` are co-located on it, `students` is the
 * dictionary (a reference table there).
 *
 * `apply_score_ids` takes the students a writer already knows as their 4-byte
 * keys and only the new names as text, and returns the keys of the new names,
 * so that a writer sends and Postgres parses and looks up each name once.
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
      PRIMARY KEY (student, exam)
    )`.execute(db);
  await sql`CREATE INDEX results_exam ON results (exam)`.execute(db);
  await sql`
    CREATE TABLE student_totals (
      student int4 PRIMARY KEY,
      count int4 NOT NULL,
      sum float8 NOT NULL
    ) WITH (
      fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000
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
      -- A statement of the same writer may still be running (abandoned after
      -- its deadline, or the last of a worker that died): it must commit before
      -- this one takes its snapshot, or a row it inserts would be in neither
      -- "inserted" nor "regraded" below, and this batch's score for it lost.
      PERFORM pg_advisory_xact_lock(hashtext('apply_score_ids'), p_writer);

      IF cardinality(p_new_names) > 0 THEN
        INSERT INTO students (name)
        SELECT n FROM unnest(p_new_names) AS n
        ON CONFLICT (name) DO NOTHING;
        SELECT array_agg(s.id ORDER BY u.k) INTO v_new
        FROM unnest(p_new_names) WITH ORDINALITY AS u(name, k)
        JOIN students s ON s.name = u.name;
      END IF;

      -- Coalesced rows are the contract: with a key twice, the insert below
      -- would keep the first row silently.
      IF (SELECT count(*) FROM (
            SELECT DISTINCT CASE WHEN s > 0 THEN s ELSE v_new[-s] END, e
            FROM unnest(p_students, p_exams) AS u(s, e)) d)
         <> cardinality(p_students) THEN
        RAISE EXCEPTION 'apply_score_ids: a (student, exam) appears twice; rows must be coalesced'
          USING ERRCODE = 'cardinality_violation';
      END IF;

      WITH input AS (
        SELECT CASE WHEN u.student > 0 THEN u.student ELSE v_new[-u.student] END AS student,
               u.exam, u.score
        FROM unnest(p_students, p_exams, p_scores) AS u(student, exam, score)
      ), inserted AS (
        -- Most rows are new: their insert is the only probe of the key they need.
        INSERT INTO results (student, exam, score)
        SELECT student, exam, score FROM input ORDER BY student, exam
        ON CONFLICT (student, exam) DO NOTHING
        RETURNING student, exam, score
      ), regraded AS (
        -- The rest were stored before this statement (its snapshot sees them,
        -- not the rows inserted above): their old score, where it changes.
        SELECT i.student, i.exam, i.score, o.score AS old
        FROM input i
        JOIN results o ON o.student = i.student AND o.exam = i.exam
        WHERE NOT EXISTS (
          SELECT 1 FROM inserted n WHERE n.student = i.student AND n.exam = i.exam
        ) AND o.score <> i.score
      ), updated AS (
        UPDATE results r SET score = g.score FROM regraded g
        WHERE r.student = g.student AND r.exam = g.exam
      ), delta AS (
        SELECT student, exam, score AS dsum, 1 AS dcount FROM inserted
        UNION ALL
        SELECT student, exam, score - old, 0 FROM regraded
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

  // For callers that have only names, not keys: the same meaning as apply_score_ids.
  await sql`
    CREATE FUNCTION apply_scores(
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
  await sql`DROP FUNCTION apply_scores`.execute(db);
  await sql`DROP FUNCTION apply_score_ids`.execute(db);
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
