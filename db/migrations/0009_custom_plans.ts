// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

const SIGNATURE = sql.raw(
  "apply_score_ids(int2, text[], int4[], int4[], float8[], text[], text[], text[])",
);

/**
 * `apply_score_ids` plans its statements for every call. PL/pgSQL caches a
 * plan per session, and after five calls may keep a generic one, planned for
 * the table sizes of then: a writer that started on an empty database kept a
 * hash join over a sequential scan of `results` (1,850 rows when planned)
 * while results grew to 275,000, 40-80 ms a commit where the other writer,
 * on index probes, took 2-8 ms (auto_explain, bench:live at 20,000 events/s).
 *
 * A later CREATE OR REPLACE of the function drops this setting unless it
 * states it again.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER FUNCTION ${SIGNATURE} SET plan_cache_mode = force_custom_plan`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER FUNCTION ${SIGNATURE} RESET plan_cache_mode`.execute(db);
}
