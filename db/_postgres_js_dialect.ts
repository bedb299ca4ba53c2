import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from "kysely";
import type { ParameterOrJSON, ReservedSql, Sql } from "postgres";
import { connectionLost, shutDown } from "./errors.ts";

/**
 * Kysely's Postgres dialect over a postgres.js pool of `max` connections. A
 * statement outside a transaction runs on the pool, as `sql.unsafe()` does; only
 * a transaction reserves a connection. (kysely-postgres-js reserves one for every
 * statement, and postgres.js 3.4 puts a reserved connection that died back into
 * its pool when it is released, where every later statement on it hangs forever:
 * one server restart was enough to wedge a pool.)
 *
 * Outside a transaction, a statement that fails because the server shut its
 * connection down (FATAL 57P01..57P03) runs again, up to once per connection of
 * the pool: postgres.js keeps that error when the connection closes and fails the
 * first statement on the reconnected connection with it, however much later, and
 * that statement was never sent. Running one again is safe here because every
 * statement the service runs outside a transaction is idempotent.
 */
export function createPostgresJsDialect(client: Sql, { max }: { max: number }): Dialect {
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new PostgresJsDriver(client, max),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  };
}

class PostgresJsDriver implements Driver {
  #client: Sql;
  #retries: number;

  constructor(client: Sql, retries: number) {
    this.#client = client;
    this.#retries = retries;
  }

  async init(): Promise<void> {}

  acquireConnection(): Promise<DatabaseConnection> {
    return Promise.resolve(new PostgresJsConnection(this.#client, this.#retries));
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings) {
    await (connection as PostgresJsConnection).reserve();
    let begin = "begin";
    if (settings.isolationLevel || settings.accessMode) {
      begin = "start transaction";
      if (settings.isolationLevel) begin += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode) begin += ` ${settings.accessMode}`;
    }
    await connection.executeQuery(CompiledQuery.raw(begin));
  }

  async commitTransaction(connection: DatabaseConnection) {
    await connection.executeQuery(CompiledQuery.raw("commit"));
  }

  async rollbackTransaction(connection: DatabaseConnection) {
    await connection.executeQuery(CompiledQuery.raw("rollback"));
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as PostgresJsConnection).release();
    return Promise.resolve();
  }

  async destroy(): Promise<void> {
    // Statements still running after a second are cut off with their connections,
    // so that a connection the network left hanging cannot hold up a shutdown.
    await this.#client.end({ timeout: 1 });
  }
}

class PostgresJsConnection implements DatabaseConnection {
  #client: Sql;
  #retries: number;
  #reserved: ReservedSql | undefined;
  #lost = false;

  constructor(client: Sql, retries: number) {
    this.#client = client;
    this.#retries = retries;
  }

  async reserve() {
    this.#reserved = await this.#client.reserve();
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // postgres.js would queue it on the dead socket, never to settle.
    if (this.#lost) throw new Error("Cannot run the statement: its connection was lost");
    for (let attempt = 0;; attempt++) {
      try {
        const result = await (this.#reserved ?? this.#client).unsafe(
          query.sql,
          query.parameters as ParameterOrJSON<never>[],
          { prepare: true },
        );
        const changes = /^(INSERT|UPDATE|DELETE|MERGE)$/.test(result.command);
        return {
          rows: [...result] as R[],
          numAffectedRows: changes ? BigInt(result.count) : undefined,
        };
      } catch (error) {
        if (this.#reserved) {
          if (connectionLost(error)) this.#lost = true;
          throw error;
        }
        if (!shutDown(error) || attempt >= this.#retries) throw error;
      }
    }
  }

  // deno-lint-ignore require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error("Cannot stream a query: not supported by this dialect");
  }

  /** Gives a reserved connection back, unless it died: the pool reconnects that one itself. */
  release() {
    if (this.#reserved && !this.#lost) this.#reserved.release();
    this.#reserved = undefined;
    this.#lost = false;
  }
}
