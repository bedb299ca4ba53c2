// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * The change log behind `GET /events`: `apply_score_ids` appends one row per
 * transaction to `result_changes`, keyed by the transaction's id (xid8), with
 * every result it stored or changed (a re-sent equal score is left out), as
 * three aligned arrays of dictionary keys, exams and scores. A reader takes the
 * rows below the oldest transaction still running (pg_snapshot_xmin), which can
 * no longer gain a row below them: a cursor is an xid and a position in its row.
 *
 * `result_changes_window` is a single row: `stream`, random per database, tells
 * a cursor of this database from one of another; every row up to
 * `pruned_through` may have been deleted, so a cursor at or below it cannot
 * resume. Otherwise `apply_score_ids` is 0003's.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE result_changes (
      xid xid8 PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT now(),
      n int4 NOT NULL,
      students int4[] NOT NULL,
      exams int4[] NOT NULL,
      scores float8[] NOT NULL
    )`.execute(db);
  await sql`
    CREATE TABLE result_changes_window (
      one boolean PRIMARY KEY DEFAULT true CHECK (one),
      stream text NOT NULL,
      pruned_through xid8 NOT NULL
    )`.execute(db);
  await sql`
    INSERT INTO result_changes_window (stream, pruned_through)
    VALUES (substr(md5(gen_random_uuid()::text), 1, 8), '0')`.execute(db);
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
            RETURNING s.student, s.exam, s.score, s.score - s.old AS dsum
          ), logged AS (
            -- One row per transaction: its changes sorted by (student, exam),
            -- so that runs of equal keys compress (pglz) in TOAST. A second
            -- call in the same transaction appends to the row.
            INSERT INTO result_changes AS l (xid, n, students, exams, scores)
            SELECT pg_current_xact_id(), count(*), array_agg(student), array_agg(exam),
                   array_agg(score)
            FROM (
              SELECT student, exam, score FROM fresh
              UNION ALL
              SELECT student, exam, score FROM regraded
              ORDER BY student, exam
            ) c
            HAVING count(*) > 0
            ON CONFLICT (xid) DO UPDATE
            SET n = l.n + excluded.n, students = l.students || excluded.students,
                exams = l.exams || excluded.exams, scores = l.scores || excluded.scores
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
      ON CONFLICT (md5(event_id), md5(raw)) WHERE event_id IS NOT NULL DO NOTHING;
      RETURN v_new;
    END
    $fn$`.execute(db);
}

/** Restores 0003's function; the change log is dropped. */
export async function down(db: Kysely<any>): Promise<void> {
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
      ON CONFLICT (md5(event_id), md5(raw)) WHERE event_id IS NOT NULL DO NOTHING;
      RETURN v_new;
    END
    $fn$`.execute(db);
  await sql`DROP TABLE result_changes_window`.execute(db);
  await sql`DROP TABLE result_changes`.execute(db);
}
