import { Kysely, sql } from "kysely";
import postgres from "postgres";
import { createPostgresJsDialect } from "./_postgres_js_dialect.ts";
import { describeError } from "./errors.ts";
import type { Database } from "./schema.ts";

/**
 * How connections reach Postgres: `session`, directly or through a pooler
 * that gives each client its own server session; `transaction`, through a
 * transaction-mode pooler (pgbouncer `pool_mode = transaction`), where each
 * transaction may run in another session.
 */
export type PoolMode = "session" | "transaction";

/** How to reach Postgres. */
export interface DbOptions {
  url: string;
  /**
   * `transaction`: no prepared statements, and no session settings sent at
   * start-up (a transaction pooler refuses them): set `statement_timeout` on
   * the role instead.
   */
  poolMode?: PoolMode;
  /** Connections in the pool. */
  max?: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** Server-side deadline of every statement, in milliseconds. */
  statementTimeoutMs?: number;
}

/**
 * A Kysely instance over postgres.js; `close()` ends its connections, cutting off
 * statements still running after a second.
 */
export interface Db {
  db: Kysely<Database>;
  close(): Promise<void>;
}

/**
 * A Kysely instance over a postgres.js pool. Creating one also guards this realm
 * (the main thread or a worker) against postgres.js's background errors.
 */
export function createDb(
  {
    url,
    poolMode = "session",
    max = 1,
    applicationName = "scorestream",
    statementTimeoutMs = 30_000,
  }: DbOptions,
): Db {
  guardBackgroundErrors();
  const session = poolMode === "session";
  const client = postgres(url, {
    max,
    prepare: session,
    onnotice: () => {},
    connect_timeout: 10,
    // postgres.js waits up to 20 s between attempts after a run of failed ones:
    // once Postgres is back, the service would stay unready that long.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 1),
    connection: {
      application_name: applicationName,
      ...session && {
        statement_timeout: statementTimeoutMs,
        idle_in_transaction_session_timeout: statementTimeoutMs * 2,
      },
    },
  });
  const db = new Kysely<Database>({ dialect: createPostgresJsDialect(client, { max }) });
  return { db, close: () => db.destroy() };
}

let guarded = false;

/**
 * postgres.js (3.4) fetches the array types of every new connection in a promise
 * nobody awaits. When the server closes such a connection, as a fast shutdown does
 * to one it just accepted, that promise rejects unhandled, and the library then
 * writes to the closed socket from a timer and throws: either would end the
 * process, or the writer's worker. Both are connection failures that the queries
 * waiting on the connection see and retry on their own, so they are logged, not
 * fatal. Only errors raised inside postgres.js's connection code are caught.
 */
function guardBackgroundErrors() {
  if (guarded) return;
  guarded = true;
  const guard = (error: unknown, event: Event) => {
    if (!(error instanceof Error && POSTGRES_JS_CONNECTION.test(error.stack ?? ""))) return;
    event.preventDefault();
    console.warn(JSON.stringify({
      time: new Date().toISOString(),
      level: "warn",
      msg: "postgres.js failed outside any query; its connection is replaced",
      error: describeError(error),
    }));
  };
  globalThis.addEventListener("unhandledrejection", (event) => guard(event.reason, event));
  globalThis.addEventListener("error", (event) => guard(event.error, event));
}

// A stack frame in postgres.js's src/connection.js, wherever the package is installed.
const POSTGRES_JS_CONNECTION = /[/\\]postgres[/\\](?:[^/\\\s]+[/\\])?src[/\\]connection\.js:/;

/** Opens a connection of `db` (postgres.js connects lazily); rejects when Postgres cannot be reached. */
export async function ping(db: Db): Promise<void> {
  await sql`SELECT 1`.execute(db.db);
}
