// Frozen in time: this migration takes Kysely<any> and imports no application code.
// deno-lint-ignore-file no-explicit-any
import { type Kysely, sql } from "kysely";

/**
 * An index on the quarantine's reason, for /stats's counts by reason: an
 * index-only scan of the reasons (short texts, many of them equal, which
 * B-tree deduplication stores once) instead of a scan of every raw payload.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX quarantine_reason ON quarantine (reason)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX quarantine_reason`.execute(db);
}
