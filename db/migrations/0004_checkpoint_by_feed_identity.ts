// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * A checkpoint is keyed by the feed's identity, no longer by its whole URL:
 * the URL without its credentials (`user:password@`), query and fragment, so
 * that rotating a token in `?token=` or a password keeps the resume point, and
 * no secret is stored. Existing keys are rewritten to that form; where several
 * URLs of one feed had a checkpoint each, the most recently updated one stays.
 * The same rule is `feedIdentity()` in ingest/feed_identity.ts (it must not
 * change without a migration like this one).
 */
const identity = sql`
  regexp_replace(regexp_replace(feed, '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\\1'), '[?#].*$', '')`;

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    DELETE FROM ingest_checkpoint c USING (
      SELECT feed, row_number() OVER (PARTITION BY ${identity} ORDER BY updated_at DESC, feed) AS n
      FROM ingest_checkpoint
    ) ranked
    WHERE c.feed = ranked.feed AND ranked.n > 1`.execute(db);
  await sql`UPDATE ingest_checkpoint SET feed = ${identity} WHERE feed <> ${identity}`.execute(db);
}

/** The original keys are gone (they held the secrets); the identities stay as they are. */
export async function down(_db: Kysely<any>): Promise<void> {}
