// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * Leadership per feed (the feed key of `ingest_checkpoint`): one row per feed
 * with the current epoch, who holds it, since when and until when. `locked`
 * says the holder also holds the feed's session advisory lock, so that a
 * free lock proves the holder's session is gone (an immediate takeover).
 *
 * `ingest_fence(feed, epoch)` is called first in every statement a leader
 * commits: it raises SQLSTATE SF001 unless `epoch` is the feed's current one.
 * It reads the row FOR SHARE, so an epoch bump (an UPDATE of the row) waits
 * for every transaction that passed the fence to end, and every transaction
 * after the bump sees the new epoch: no write of an old epoch commits after
 * a new leader took over.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE ingest_leader (
      feed text PRIMARY KEY,
      epoch int4 NOT NULL,
      holder text NOT NULL,
      since timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      locked boolean NOT NULL
    )`.execute(db);
  await sql`
    CREATE FUNCTION ingest_fence(p_feed text, p_epoch int4) RETURNS void
    LANGUAGE plpgsql AS $fn$
    DECLARE
      v_epoch int4;
    BEGIN
      SELECT epoch INTO v_epoch FROM ingest_leader WHERE feed = p_feed FOR SHARE;
      IF v_epoch IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'Cannot commit for feed "%" in epoch %: the current epoch is %',
          p_feed, p_epoch, coalesce(v_epoch::text, 'none')
          USING ERRCODE = 'SF001';
      END IF;
    END
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION ingest_fence(text, int4)`.execute(db);
  await sql`DROP TABLE ingest_leader`.execute(db);
}
