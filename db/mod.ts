export { applyScores, type QuarantineRow, type ScoreColumns } from "./apply_scores.ts";
export { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
export { createDb, type Db, type DbOptions } from "./connect.ts";
export { type EmbeddedPostgres, startEmbeddedPostgres } from "./embedded_postgres.ts";
export { classifyError, describeError } from "./errors.ts";
export { isMigrated, migrateToLatest } from "./migrate.ts";
export type { Database } from "./schema.ts";
