import assert from "node:assert/strict";
import { sql } from "kysely";
import { isMigrated, migrateToLatest } from "../../db/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";

for (const kind of databaseKinds) {
  Deno.test(`migrateToLatest() is a no-op on a migrated database (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    assert.equal(await isMigrated(t.db), true);
    await migrateToLatest(t.db);
    const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(t.db);
    assert.deepEqual(rows.map((r) => r.name), ["0001_initial"]);
  });

  Deno.test(`migrateToLatest() names a migration the database has and this code does not (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await sql`INSERT INTO kysely_migration (name, timestamp) VALUES ('0002_from_the_future', '2027-01-01')`
      .execute(t.db);
    await assert.rejects(
      migrateToLatest(t.db),
      /^Error: Cannot migrate the database: .*0002_from_the_future/,
    );
  });
}
