// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * A student's count and average are computed from `results` when read, and
 * `student_totals` goes. Keeping it cost an upsert of one row per student per
 * batch: with the demo feed a batch of 25,000 results touches ~9,000 of a
 * writer's students, and the upsert was 17% of the apply statement's time. A
 * student's results are one range of the primary key, which a read walks for
 * its page anyway. The mean of the stored scores is also the exact definition
 * of a student's average, where the running sum collected the rounding of
 * every regrade's difference.
 *
 * `apply_score_ids` now also inserts new results with a plain INSERT. A result
 * can only exist if its exam has results already (`exam_totals` commits with
 * them), so the rows of exams not yet seen skip the probe for an old score, and
 * only the rest are looked up (and locked, so that a concurrent regrade is
 * waited for). A plain INSERT does without ON CONFLICT's speculative insertion
 * (6% of the statement's time in one measurement). If a row appears anyway (a
 * statement of another writer that owned the student, in a process with
 * another writer count still finishing, committed it after this statement's
 * snapshot), the statement runs once more from a new snapshot, probing every
 * row. Two such processes can also deadlock on each other's rows, which
 * Postgres breaks by failing one statement, and the writer retries it. Rows
 * that repeat a (student, exam), against the contract, still fail with a
 * cardinality violation, now found by the primary key and by counting the few
 * stored rows, not by hashing every row first. New rows are inserted in the
 * batch's order, not sorted by the key.
 *
 * Batches of 25,000 demo events applied one at a time (`deno task bench:apply`):
 * 12.05-12.14 µs per event before, 7.96-8.10 after; 94.8 -> 88.2 bytes per result.
 *
 * Citus-style sharding by student stays as it was: `results` is distributed by
 * `student`, `students` is the dictionary.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE OR REPLACE FUNCTION apply_score_ids(
      p_writer int2, p_new_names text[], p_students int4[], p_exams int4[], p_scores float8[],
      p_q_ids text[], p_q_reasons text[], p_q_raw text[]
    ) RETURNS int4[] LANGUAGE plpgsql AS $fn$
    DECLARE
      v_new int4[] := '{}';
      v_repeated boolean;
      v_probe_all boolean := false;
    BEGIN
      -- A statement of the same writer may still be running (abandoned after
      -- its deadline, or the last of a worker that died): it must commit before
      -- this one takes its snapshot, or a row it inserts would be invisible to
      -- the probe below and this batch's score for it lost.
      PERFORM pg_advisory_xact_lock(hashtext('apply_score_ids'), p_writer);

      IF cardinality(p_new_names) > 0 THEN
        INSERT INTO students (name)
        SELECT n FROM unnest(p_new_names) AS n
        ON CONFLICT (name) DO NOTHING;
        SELECT array_agg(s.id ORDER BY u.k) INTO v_new
        FROM unnest(p_new_names) WITH ORDINALITY AS u(name, k)
        JOIN students s ON s.name = u.name;
      END IF;

      -- Coalesced rows are the contract, checked where it is cheap: the primary
      -- key refuses a new (student, exam) twice (see the handler), and the few
      -- rows stored before are counted after the statement.
      LOOP
        BEGIN
          WITH input AS (
            SELECT CASE WHEN u.student > 0 THEN u.student ELSE v_new[-u.student] END AS student,
                   u.exam, u.score
            FROM unnest(p_students, p_exams, p_scores) AS u(student, exam, score)
          ), seen AS MATERIALIZED (
            SELECT DISTINCT exam FROM exam_totals WHERE exam = ANY (p_exams)
          ), stored AS MATERIALIZED (
            -- Locked, so that a regrade committed meanwhile by another writer's
            -- statement is waited for and its score read as the old one.
            SELECT i.student, i.exam, i.score, o.score AS old
            FROM input i JOIN results o ON o.student = i.student AND o.exam = i.exam
            WHERE v_probe_all OR i.exam IN (SELECT exam FROM seen)
            FOR UPDATE OF o
          ), fresh AS MATERIALIZED (
            SELECT i.student, i.exam, i.score FROM input i
            WHERE NOT EXISTS (
              SELECT 1 FROM stored s WHERE s.student = i.student AND s.exam = i.exam
            )
          ), inserted AS (
            INSERT INTO results (student, exam, score)
            -- In the batch's order: exams come in order, so the exam index is
            -- appended to (a sort by the key split its pages: +4.4 B/result).
            SELECT student, exam, score FROM fresh
          ), regraded AS (
            UPDATE results r SET score = s.score FROM stored s
            WHERE r.student = s.student AND r.exam = s.exam AND s.score <> s.old
            RETURNING s.exam, s.score - s.old AS dsum
          ), totals AS (
            INSERT INTO exam_totals AS t (exam, writer, count, sum)
            SELECT exam, p_writer, sum(dcount), sum(dsum)
            FROM (
              SELECT exam, score AS dsum, 1 AS dcount FROM fresh
              UNION ALL
              SELECT exam, dsum, 0 FROM regraded
            ) delta
            GROUP BY exam
            ON CONFLICT (exam, writer) DO UPDATE
            SET count = t.count + excluded.count, sum = t.sum + excluded.sum
          )
          SELECT count(*) <> count(DISTINCT (student, exam)) INTO v_repeated FROM stored;
          EXIT;
        EXCEPTION WHEN unique_violation THEN
          IF (SELECT count(*) FROM (
                SELECT DISTINCT CASE WHEN s > 0 THEN s ELSE v_new[-s] END, e
                FROM unnest(p_students, p_exams) AS u(s, e)) d)
             <> cardinality(p_students) THEN
            v_repeated := true;
            EXIT;
          ELSIF v_probe_all THEN
            RAISE EXCEPTION 'apply_score_ids: results of this batch keep being stored by another statement; retry'
              USING ERRCODE = 'serialization_failure', DETAIL = SQLERRM;
          END IF;
          -- A row of an exam this statement thought new was there: committed
          -- since its snapshot by another writer's statement (a process with
          -- another writer count, still finishing), or stored without its
          -- exam's aggregate row. Once more, from a new snapshot, probing all.
          v_probe_all := true;
        END;
      END LOOP;
      IF v_repeated THEN
        RAISE EXCEPTION 'apply_score_ids: a (student, exam) appears twice; rows must be coalesced'
          USING ERRCODE = 'cardinality_violation';
      END IF;

      INSERT INTO quarantine (event_id, reason, raw)
      SELECT * FROM unnest(p_q_ids, p_q_reasons, p_q_raw)
      ON CONFLICT (event_id, md5(raw)) WHERE event_id IS NOT NULL DO NOTHING;
      RETURN v_new;
    END
    $fn$`.execute(db);
  await sql`DROP TABLE student_totals`.execute(db);
}

/** Rebuilds `student_totals` from the results and restores 0001's `apply_score_ids`. */
export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE student_totals (
      student int4 PRIMARY KEY,
      count int4 NOT NULL,
      sum float8 NOT NULL
    ) WITH (
      fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000
    )`.execute(db);
  await sql`
    INSERT INTO student_totals (student, count, sum)
    SELECT student, count(*), sum(score) FROM results GROUP BY student`.execute(db);
  await sql`
    CREATE OR REPLACE FUNCTION apply_score_ids(
      p_writer int2, p_new_names text[], p_students int4[], p_exams int4[], p_scores float8[],
      p_q_ids text[], p_q_reasons text[], p_q_raw text[]
    ) RETURNS int4[] LANGUAGE plpgsql AS $fn$
    DECLARE
      v_new int4[] := '{}';
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('apply_score_ids'), p_writer);

      IF cardinality(p_new_names) > 0 THEN
        INSERT INTO students (name)
        SELECT n FROM unnest(p_new_names) AS n
        ON CONFLICT (name) DO NOTHING;
        SELECT array_agg(s.id ORDER BY u.k) INTO v_new
        FROM unnest(p_new_names) WITH ORDINALITY AS u(name, k)
        JOIN students s ON s.name = u.name;
      END IF;

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
        INSERT INTO results (student, exam, score)
        SELECT student, exam, score FROM input ORDER BY student, exam
        ON CONFLICT (student, exam) DO NOTHING
        RETURNING student, exam, score
      ), regraded AS (
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
}
