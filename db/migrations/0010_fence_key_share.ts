// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * `ingest_fence` reads the leadership row FOR KEY SHARE instead of 0006's FOR
 * SHARE. A lease renewal (an UPDATE of `expires_at` and `locked`, not of the
 * key) no longer waits for the transactions that passed the fence: under full
 * ingest two writers always had one open, share locks let every new one in
 * past the waiting UPDATE, and renewals waited up to 3 s, so a busy leader lost
 * its lease and stopped ingest for 2 s (bench:ingest, 1,000,000 events). An
 * epoch bump still waits for them: it locks the row FOR UPDATE first, which
 * conflicts with FOR KEY SHARE, and a fence that waited for it reads the new
 * epoch.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await fence(db, "FOR KEY SHARE");
}

export async function down(db: Kysely<any>): Promise<void> {
  await fence(db, "FOR SHARE");
}

async function fence(db: Kysely<any>, lock: "FOR KEY SHARE" | "FOR SHARE") {
  await sql`
    CREATE OR REPLACE FUNCTION ingest_fence(p_feed text, p_epoch int4) RETURNS void
    LANGUAGE plpgsql AS $fn$
    DECLARE
      v_epoch int4;
    BEGIN
      SELECT epoch INTO v_epoch FROM ingest_leader WHERE feed = p_feed ${sql.raw(lock)};
      IF v_epoch IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'Cannot commit for feed "%" in epoch %: the current epoch is %',
          p_feed, p_epoch, coalesce(v_epoch::text, 'none')
          USING ERRCODE = 'SF001';
      END IF;
    END
    $fn$`.execute(db);
}
