import assert from "node:assert/strict";
import { type Kysely, sql } from "kysely";
import { type Migration, Migrator } from "kysely/migration";
import { type Database, migrateToLatest } from "../../db/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";

// Commits of main that landed as releases whose databases this build must upgrade.
// Each one's migrations are read from git as they were then, so an edit to a
// migration that had landed shows up here as a difference from a fresh database.
const RELEASES = ["873020d", "5c9986a", "2d07744"];

for (const kind of databaseKinds) {
  for (const release of RELEASES) {
    Deno.test(`a database migrated by release ${release} upgrades to exactly a fresh one's schema (${kind})`, async () => {
      await using fresh = await createTestDatabase(kind);
      await using upgraded = await createTestDatabase(kind, { migrate: false });
      const migrator = new Migrator({
        db: upgraded.db,
        provider: { getMigrations: () => migrationsAt(release) },
      });
      assert.equal((await migrator.migrateToLatest()).error, undefined);
      await migrateToLatest(upgraded.db);
      assert.deepEqual(await catalog(upgraded.db), await catalog(fresh.db));
    });
  }
}

Deno.test("catalog() sees a changed function body", async () => {
  await using t = await createTestDatabase("embedded");
  const before = await catalog(t.db);
  await sql`CREATE FUNCTION probe() RETURNS int LANGUAGE sql AS 'SELECT 1'`.execute(t.db);
  const created = await catalog(t.db);
  await sql`CREATE OR REPLACE FUNCTION probe() RETURNS int LANGUAGE sql AS 'SELECT 2'`.execute(
    t.db,
  );
  assert.notDeepEqual(created, before);
  assert.notDeepEqual(await catalog(t.db), created);
});

/** The migrations of a commit, imported from git's copy of each file. */
async function migrationsAt(commit: string): Promise<Record<string, Migration>> {
  const git = (...args: string[]) => {
    const { success, stdout, stderr } = new Deno.Command("git", { args }).outputSync();
    const text = new TextDecoder().decode(success ? stdout : stderr);
    if (!success) throw new Error(`git ${args.join(" ")}: ${text}`);
    return text;
  };
  const names = git("ls-tree", "--name-only", `${commit}:db/migrations`).split("\n")
    .filter((n) => n.endsWith(".ts"));
  // Inside the project, so that the migrations' bare "kysely" resolves as it does for db/.
  const dir = await Deno.makeTempDir({ dir: new URL(".", import.meta.url).pathname });
  try {
    const migrations: Record<string, Migration> = {};
    for (const name of names) {
      const path = `${dir}/${name}`;
      await Deno.writeTextFile(path, git("show", `${commit}:db/migrations/${name}`));
      migrations[name.replace(/\.ts$/, "")] = await import(`file://${path}`);
    }
    return migrations;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every object of the public schema as Postgres prints its definition, in a stable order. */
async function catalog(db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ def: string }>`
    SELECT 'column ' || c.relname || '.' || a.attname || ' ' ||
        format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
        coalesce(' collate ' || co.collname, '') ||
        coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') ||
        CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END AS def
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
      WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
        AND c.relkind IN ('r', 'p', 'v', 'm')
    UNION ALL
    SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' ||
        coalesce(array_to_string(c.reloptions, ','), '')
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' ||
        pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'function ' || pg_get_functiondef(p.oid)
      FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
      FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
    ORDER BY 1`.execute(db);
  return rows.map((r) => r.def);
}
