// deno task bench:storage [--events 1000000] [--seed 1]
//
// Bytes per stored result after the demo feed went through the real ingest path:
// every relation of the schema (heap, TOAST, indexes, free space and visibility
// maps), divided by the number of results, with a breakdown per relation. The
// baseline beside it: the same results as a bare table keyed by (studentId, exam)
// with an index on (exam, studentId), as the ingest benchmark's COPY builds it.
import postgres from "postgres";
import { benchFlags, createBenchDb, describeMachine, fmt, ingestDemo } from "./_harness.ts";

const { events, seed } = benchFlags({ events: 1_000_000, seed: 1 });

interface Relation {
  name: string;
  kind: string;
  table: string;
  bytes: string;
}

console.log(await describeMachine("bench:storage"));
const db = await createBenchDb("scorestream_bench_storage");
try {
  await ingestDemo({ databaseUrl: db.url, events, seed });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  await sql`CREATE TABLE naive (
    student_id text COLLATE "C" NOT NULL, exam int4 NOT NULL, score float8 NOT NULL,
    PRIMARY KEY (student_id, exam))`;
  await sql`CREATE INDEX naive_exam ON naive (exam, student_id)`;
  await sql`INSERT INTO naive SELECT s.name, r.exam, r.score
    FROM results r JOIN students s ON s.id = r.student ORDER BY r.exam, s.name`;
  // Sizes as ingest left them: no VACUUM FULL, no REINDEX.
  await sql`CHECKPOINT`;
  const [{ results }] = await sql<{ results: string }[]>`SELECT count(*) AS results FROM results`;
  const relations: Relation[] = await sql<Relation[]>`
    SELECT c.relname AS name, c.relkind AS kind, coalesce(t.relname, c.relname) AS table,
           pg_relation_size(c.oid) + pg_relation_size(c.oid, 'fsm') +
             pg_relation_size(c.oid, 'vm') +
             coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS bytes
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class t ON t.oid = i.indrelid
    WHERE c.relkind IN ('r', 'i')
    ORDER BY bytes DESC`;
  await sql.end();
  const n = Number(results);
  const ours = relations.filter((r) => r.table !== "naive");
  const naive = relations.filter((r) => r.table === "naive");
  const total = (rs: Relation[]) => rs.reduce((a, r) => a + Number(r.bytes), 0);
  const line = (r: Relation) =>
    `  ${r.name.padEnd(34)} ${r.kind === "i" ? "index" : "table"}  ${
      fmt(Number(r.bytes) / 2 ** 20, 1).padStart(7)
    } MB  ${fmt(Number(r.bytes) / n, 1).padStart(6)} B/result`;
  console.log(`
${fmt(events)} demo events ingested through the service: ${fmt(n)} results
scorestream schema (all relations, heap + TOAST + indexes + FSM/VM):
${ours.map(line).join("\n")}
  total ${fmt(total(ours) / 2 ** 20, 1)} MB = ${
    fmt(total(ours) / n, 1)
  } bytes per result   target <= 100
baseline, same run: the same results as (student_id text, exam, score), PK + index (exam, student_id):
${naive.map(line).join("\n")}
  total ${fmt(total(naive) / 2 ** 20, 1)} MB = ${fmt(total(naive) / n, 1)} bytes per result`);
} finally {
  await db.drop();
}
