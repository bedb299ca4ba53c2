// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * Drops `apply_scores` (names only), which only tests and benchmarks called:
 * they now drive the writers' own path, `applyScores()` over `apply_score_ids`.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION apply_scores(int2, text[], int4[], float8[], text[], text[], text[])`
    .execute(db);
}

/** Restores the function as 0001 created it. */
export async function down(db: Kysely<any>): Promise<void> {
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
