import { Kysely } from "kysely";
import { PostgresJSDialect } from "kysely-postgres-js";
import postgres from "postgres";
import type { Database } from "./schema.ts";

/** How to reach Postgres. */
export interface DbOptions {
  url: string;
  /** Connections in the pool. */
  max?: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** Server-side deadline of every statement, in milliseconds. */
  statementTimeoutMs?: number;
}

/** A Kysely instance over postgres.js; `close()` ends its connections. */
export interface Db {
  db: Kysely<Database>;
  close(): Promise<void>;
}

export function createDb(
  { url, max = 1, applicationName = "scorestream", statementTimeoutMs = 30_000 }: DbOptions,
): Db {
  const client = postgres(url, {
    max,
    onnotice: () => {},
    connect_timeout: 10,
    connection: {
      application_name: applicationName,
      statement_timeout: statementTimeoutMs,
      idle_in_transaction_session_timeout: statementTimeoutMs * 2,
    },
  });
  const db = new Kysely<Database>({ dialect: new PostgresJSDialect({ postgres: client }) });
  return { db, close: () => db.destroy() };
}
