export { createDb, type Db, type DbOptions } from "./connect.ts";
export { type EmbeddedPostgres, startEmbeddedPostgres } from "./embedded_postgres.ts";
export { isMigrated, migrateToLatest } from "./migrate.ts";
export type { Database } from "./schema.ts";
