import type { Kysely } from "kysely";
import { type Migration, Migrator } from "kysely/migration";
import * as initial from "./migrations/0001_initial.ts";
import * as studentTotalsAtReadTime from "./migrations/0002_student_totals_at_read_time.ts";
import * as quarantineAnyIdLength from "./migrations/0003_quarantine_any_id_length.ts";
import * as checkpointByFeedIdentity from "./migrations/0004_checkpoint_by_feed_identity.ts";
import * as dropApplyScores from "./migrations/0005_drop_apply_scores.ts";
import * as ingestLeader from "./migrations/0006_ingest_leader.ts";
import * as quarantineReason from "./migrations/0007_quarantine_reason.ts";
import * as changeLog from "./migrations/0008_change_log.ts";
import * as customPlans from "./migrations/0009_custom_plans.ts";
import * as fenceKeyShare from "./migrations/0010_fence_key_share.ts";

/** Every migration by name, in the order they apply. */
export const migrations: Record<string, Migration> = {
  "0001_initial": initial,
  "0002_student_totals_at_read_time": studentTotalsAtReadTime,
  "0003_quarantine_any_id_length": quarantineAnyIdLength,
  "0004_checkpoint_by_feed_identity": checkpointByFeedIdentity,
  "0005_drop_apply_scores": dropApplyScores,
  "0006_ingest_leader": ingestLeader,
  "0007_quarantine_reason": quarantineReason,
  "0008_change_log": changeLog,
  "0009_custom_plans": customPlans,
  "0010_fence_key_share": fenceKeyShare,
};

/** A Kysely migrator over this build's migrations. */
export function createMigrator<T>(db: Kysely<T>): Migrator {
  return new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrations) } });
}

/**
 * Applies every pending migration; throws with the failing migration's error.
 *
 * Kysely takes its migration lock (a session advisory lock) on a connection
 * outside its transaction, and releases it with another statement: behind a
 * transaction-mode pooler the two may run in different server sessions, and
 * the lock stays taken for good, blocking the next instance's start. Inside a
 * transaction given to it, lock, migrations and unlock share one session.
 */
export async function migrateToLatest<T>(db: Kysely<T>): Promise<void> {
  await db.transaction().execute((trx) => migrateIn(trx));
}

async function migrateIn<T>(db: Kysely<T>): Promise<void> {
  const { error, results } = await createMigrator(db).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      failed
        ? `Cannot migrate the database: migration "${failed}" failed: ${reason}`
        : `Cannot migrate the database: ${reason}`,
      { cause: error },
    );
  }
}

/** Whether every known migration has been applied. */
export async function isMigrated<T>(db: Kysely<T>): Promise<boolean> {
  const all = await createMigrator(db).getMigrations();
  return all.every((m) => m.executedAt !== undefined);
}
