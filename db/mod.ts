export {
  applyScores,
  type QuarantineRow,
  type ScoreColumns,
  type StudentKeyCache,
} from "./apply_scores.ts";
export { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
export { createDb, type Db, type DbOptions, ping, type PoolMode } from "./connect.ts";
export { dataDir } from "./data_dir.ts";
export { type EmbeddedPostgres, startEmbeddedPostgres } from "./embedded_postgres.ts";
export { classifyError, describeError } from "./errors.ts";
export { createMigrator, isMigrated, migrateToLatest, migrations } from "./migrate.ts";
export { createQueries, type Queries, type QueriesOptions, type ResultScope } from "./queries.ts";
export { ReadError, type ReadErrorCode } from "./read_error.ts";
export {
  type ExamHistogram,
  type ExamPage,
  type ExamResults,
  type ExamStanding,
  type ExamSummary,
  type ExamTop,
  EXCERPT_CHARS,
  type JsonText,
  type QuarantinedEvent,
  type QuarantinePage,
  type StudentPage,
  type StudentResults,
  type StudentSummary,
  type StudentTrend,
  type Totals,
  type Versioned,
} from "./response_types.ts";
export * from "./result.ts";
export type { Database } from "./schema.ts";
export {
  type ChangeListenerOptions,
  CHANGES_CHANNEL,
  listenForChanges,
} from "./change_listener.ts";
export { type Fence } from "./fence.ts";
export {
  type Acquired,
  checkSessionPooling,
  createLeaderLease,
  type Leader,
  type LeaderLease,
  type LeaderLeaseOptions,
  type Term,
  TransactionPoolerError,
} from "./leader_lease.ts";
export {
  type ChangeLog,
  type ChangePage,
  createChangeLog,
  type LoggedTransaction,
  parseSnapshot,
  pruneChanges,
  type Retention,
  type SnapshotBounds,
  visibleIn,
} from "./change_log.ts";
