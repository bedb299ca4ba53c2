import assert from "node:assert/strict";
import { sql } from "kysely";
import {
  applyScores,
  createMigrator,
  isMigrated,
  migrateToLatest,
  migrations,
} from "../../db/mod.ts";
import { feedIdentity } from "../../ingest/mod.ts";
import { createQueries } from "../../db/queries.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";

Deno.test("every file in db/migrations is applied, in the order of its number", () => {
  const files = [...Deno.readDirSync(new URL("../../db/migrations/", import.meta.url))]
    .map((entry) => entry.name.replace(/\.ts$/, ""))
    .sort();
  assert.deepEqual(Object.keys(migrations), files);
  files.forEach((name, i) => assert.equal(name.slice(0, 4), String(i + 1).padStart(4, "0")));
});

for (const kind of databaseKinds) {
  Deno.test(`migration 0004 keys checkpoints by the feed's identity, keeping the latest of each feed (${kind})`, async () => {
    await using t = await createTestDatabase(kind, { migrate: false });
    const migrator = createMigrator(t.db);
    assert.equal((await migrator.migrateTo("0003_quarantine_any_id_length")).error, undefined);
    const old = [
      ["http://u:p@feed.example:8001/scores?token=old", "7", "2026-01-01"],
      ["http://feed.example:8001/scores?token=new", "9", "2026-01-02"],
      ["https://other.example/s#frag", "x", "2026-01-01"],
      ["builtin:demo", "3", "2026-01-01"],
    ];
    for (const [feed, id, at] of old) {
      await sql`INSERT INTO ingest_checkpoint (feed, last_event_id, updated_at)
        VALUES (${feed}, ${id}, ${at}::timestamptz)`.execute(t.db);
    }
    assert.equal((await migrator.migrateUp()).error, undefined);
    const { rows } = await sql<{ feed: string; last_event_id: string }>`
      SELECT feed, last_event_id FROM ingest_checkpoint ORDER BY feed`.execute(t.db);
    assert.deepEqual(rows, [
      { feed: "builtin:demo", last_event_id: "3" },
      { feed: "http://feed.example:8001/scores", last_event_id: "9" },
      { feed: "https://other.example/s", last_event_id: "x" },
    ]);
    // The service looks its checkpoint up by feedIdentity(): it must agree with the SQL.
    assert.deepEqual(
      rows.map((r) => r.feed),
      [old[3][0], old[1][0], old[2][0]].map(feedIdentity),
    );
  });

  Deno.test(`migrateToLatest() is a no-op on a migrated database (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    assert.equal(await isMigrated(t.db), true);
    await migrateToLatest(t.db);
    const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(t.db);
    assert.deepEqual(rows.map((r) => r.name), [
      ...Object.keys(migrations),
    ]);
  });

  Deno.test(`migrateToLatest() names a migration the database has and this code does not (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await sql`INSERT INTO kysely_migration (name, timestamp) VALUES ('0099_from_the_future', '2027-01-01')`
      .execute(t.db);
    await assert.rejects(
      migrateToLatest(t.db),
      /^Error: Cannot migrate the database: .*0099_from_the_future/,
    );
  });

  Deno.test(`migration 0002 keeps every result across up, down and up again (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const migrator = createMigrator(t.db);
    const totals = async () =>
      (await sql<{ name: string; count: number; sum: number }>`
        SELECT s.name, t.count, t.sum FROM student_totals t JOIN students s ON s.id = t.student
        ORDER BY s.name`.execute(t.db)).rows;
    const student = async (name: string) =>
      JSON.parse((await createQueries(t.db).student(name, { limit: 10 }))!.body);

    assert.equal((await migrator.migrateTo("0001_initial")).error, undefined);
    await applyScores(t.db, 0, { names: ["a", "b"], exams: [1, 1], scores: [0.5, 0.25] }, []);
    await applyScores(t.db, 0, { names: ["a", "a"], exams: [1, 2], scores: [0.75, 0.5] }, []);
    assert.deepEqual(await totals(), [
      { name: "a", count: 2, sum: 1.25 },
      { name: "b", count: 1, sum: 0.25 },
    ]);

    assert.equal((await migrator.migrateToLatest()).error, undefined);
    assert.equal(await isMigrated(t.db), true);
    await applyScores(t.db, 1, { names: ["b"], exams: [2], scores: [1] }, []);
    assert.deepEqual(
      [await student("a"), await student("b")].map(({ count, average }) => ({ count, average })),
      [{ count: 2, average: 0.625 }, { count: 2, average: 0.625 }],
    );

    assert.equal((await migrator.migrateTo("0001_initial")).error, undefined);
    assert.deepEqual(await totals(), [
      { name: "a", count: 2, sum: 1.25 },
      { name: "b", count: 2, sum: 1.25 },
    ]);
    await migrateToLatest(t.db);
    assert.equal((await student("b")).results.length, 2);
  });

  Deno.test(`migration 0003 upgrades a database to exactly what a fresh one gets, keeping the quarantine (${kind})`, async () => {
    await using fresh = await createTestDatabase(kind);
    await using t = await createTestDatabase(kind, { migrate: false });
    const migrator = createMigrator(t.db);
    assert.equal((await migrator.migrateTo("0002_student_totals_at_read_time")).error, undefined);
    const row = { eventId: "1", reason: "invalid_json: x", raw: "x" };
    await applyScores(t.db, 0, { names: [], exams: [], scores: [] }, [row]);
    await migrateToLatest(t.db);
    await applyScores(t.db, 0, { names: [], exams: [], scores: [] }, [row]);
    const schema = async (db: typeof t.db) =>
      (await sql<{ def: string }>`
        SELECT indexdef AS def FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL
        SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ')' || p.prosrc
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
        ORDER BY 1`.execute(db)).rows.map((r) => r.def);
    assert.deepEqual(await schema(t.db), await schema(fresh.db));
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM quarantine`.execute(
      t.db,
    );
    assert.equal(rows[0].n, 1, "a replay after the upgrade finds the row stored before it");
  });
}
