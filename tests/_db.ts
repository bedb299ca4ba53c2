import { sql } from "kysely";
import postgres from "postgres";
import { createDb, type Db, migrateToLatest, startEmbeddedPostgres } from "../db/mod.ts";
import { until } from "./_wait.ts";

/** Where a test database comes from: the server in DATABASE_URL, or PGlite. */
export type TestDatabaseKind = "server" | "embedded";

/** The kinds available here: the embedded one always, the server when DATABASE_URL is set. */
export const databaseKinds: TestDatabaseKind[] = Deno.env.get("DATABASE_URL")
  ? ["server", "embedded"]
  : ["embedded"];

/** A fresh, migrated database and its URL; `close()` drops it. */
export interface TestDatabase extends Db {
  url: string;
  kind: TestDatabaseKind;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Creates a fresh database: a new database on the server in DATABASE_URL (so
 * tests never see each other's rows), or a new in-memory PGlite; migrated to the
 * latest schema unless `migrate` is false.
 */
export async function createTestDatabase(
  kind: TestDatabaseKind,
  { migrate = true }: { migrate?: boolean } = {},
): Promise<TestDatabase> {
  let url: string;
  let drop: () => Promise<void>;
  if (kind === "server") {
    const serverUrl = Deno.env.get("DATABASE_URL");
    if (!serverUrl) throw new Error("DATABASE_URL is not set");
    const name = `scorestream_test_${crypto.randomUUID().replaceAll("-", "")}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const u = new URL(serverUrl);
    u.pathname = `/${name}`;
    url = u.href;
    drop = async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    };
  } else {
    const embedded = await startEmbeddedPostgres({ dataDir: "memory://" });
    url = embedded.url;
    drop = () => embedded.close();
  }
  const db = createDb({ url, max: 4 });
  if (migrate) await migrateToLatest(db.db);
  const close = async () => {
    await db.close();
    await drop();
  };
  return { ...db, url, kind, close, [Symbol.asyncDispose]: close };
}

/** Resolves once a statement of the test's database waits for a lock (fails after 10 s). */
export async function untilAStatementWaitsForALock(t: TestDatabase, what: string): Promise<void> {
  await until(
    what,
    async () =>
      (await sql`SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`.execute(t.db))
        .rows.length > 0,
    10_000,
    20,
  );
}
