// deno task bench:ingest [--events 1000000] [--writers N] [--seed 1] [--live-feed]
//
// The demo feed at full speed, served from this process (a separate process from
// the service; rendered to memory beforehand unless --live-feed), into the real service against a real Postgres; then, in the same
// run and database, a bare COPY of the same final rows as the baseline.
import postgres from "postgres";
import {
  benchFlags,
  createBenchDb,
  describeMachine,
  fmt,
  ingestDemo,
  requireCommands,
  run,
} from "./_harness.ts";

const flags = benchFlags({ events: 1_000_000, writers: "", seed: 1, "live-feed": false });
const { events, seed, "live-feed": liveFeed } = flags;
// Without --writers, the service's default.
const writers = flags.writers === "" ? undefined : Number(flags.writers);

await requireCommands("psql");
console.log(await describeMachine("bench:ingest"));
const db = await createBenchDb("scorestream_bench_ingest");
const file = await Deno.makeTempFile({ prefix: "scorestream_copy_", suffix: ".tsv" });
try {
  const ingest = await ingestDemo({
    databaseUrl: db.url,
    events,
    writers,
    seed,
    liveFeed,
  });

  // The baseline: the same final rows, by studentId text as the feed names them,
  // COPYed over the wire into a logged table keyed like results.
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  await sql`CREATE TABLE copy_baseline (
    student_id text COLLATE "C" NOT NULL, exam int4 NOT NULL, score float8 NOT NULL,
    PRIMARY KEY (student_id, exam))`;
  await sql`CREATE INDEX copy_baseline_exam ON copy_baseline (exam, student_id)`;
  await sql`CHECKPOINT`;
  await run("psql", [
    db.url,
    "-qc",
    `\\copy (SELECT s.name, r.exam, r.score FROM results r JOIN students s ON s.id = r.student ORDER BY r.exam, s.name) TO '${file}'`,
  ]);
  const started = performance.now();
  await run("psql", [db.url, "-qc", `\\copy copy_baseline FROM '${file}'`]);
  const copySeconds = (performance.now() - started) / 1000;
  const [{ rows, results }] = await sql<{ rows: string; results: string }[]>`
    SELECT (SELECT count(*) FROM copy_baseline) AS rows, (SELECT count(*) FROM results) AS results`;
  await sql.end();

  const eventsPerSecond = ingest.events / ingest.seconds;
  const rowsPerSecond = Number(rows) / copySeconds;
  const ratio = copySeconds / ingest.seconds;
  console.log(`
ingest (feed first byte -> last commit, ${writers ?? "default"} writers, ${
    liveFeed ? "live" : "pre-rendered"
  } feed):
  ${fmt(ingest.events)} events (${fmt(Number(results))} results) in ${fmt(ingest.seconds, 2)} s = ${
    fmt(eventsPerSecond)
  } events/s   target >= 150,000 (aim 200,000)
  CPU: service ${fmt(ingest.cpu.service, 1)} s, its Postgres backends ${
    fmt(ingest.cpu.postgres, 1)
  } s = ${fmt((ingest.cpu.service + ingest.cpu.postgres) * 1e6 / ingest.events, 1)} µs per event
  peak RSS of the service process (VmHWM): ${fmt(ingest.peakRss / 2 ** 20, 1)} MB   target < 200 MB
baseline, same run: psql \\copy of the same ${fmt(Number(rows))} final rows into
  copy_baseline (student_id text, exam) PK + index (exam, student_id), logged:
  ${fmt(copySeconds, 2)} s = ${fmt(rowsPerSecond)} rows/s
ratio (COPY time / ingest time for the same final state): ${
    ratio.toFixed(2)
  }   target >= 0.7 (aim 0.8)`);
} finally {
  await Deno.remove(file).catch(() => {});
  await db.drop();
}
