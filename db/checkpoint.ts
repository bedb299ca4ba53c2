import { type Kysely, sql } from "kysely";
import { type Fence, fenced } from "./fence.ts";
import type { Database } from "./schema.ts";

/** The last committed SSE event id of a feed, or undefined when it was never read. */
export async function loadCheckpoint(
  db: Kysely<Database>,
  feed: string,
): Promise<string | undefined> {
  const row = await db.selectFrom("ingest_checkpoint").select("last_event_id")
    .where("feed", "=", feed).executeTakeFirst();
  return row?.last_event_id;
}

/**
 * Stores the last SSE event id whose events, and all before it, are committed;
 * with `fence`, only while its epoch is the feed's current one (see `applyScores`).
 */
export async function saveCheckpoint(
  db: Kysely<Database>,
  feed: string,
  lastEventId: string,
  fence?: Fence,
): Promise<void> {
  await db.insertInto("ingest_checkpoint")
    .columns(["feed", "last_event_id"])
    .expression(sql`SELECT ${feed}, ${lastEventId} ${fenced(fence)}`)
    .onConflict((oc) =>
      oc.column("feed").doUpdateSet({
        last_event_id: lastEventId,
        updated_at: new Date(),
      })
    )
    .execute();
}
