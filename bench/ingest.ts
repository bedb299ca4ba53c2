// deno task bench:ingest [--events 300000,1000000] [--writers N] [--seed 1] [--live-feed]
//
// For each number of events: the demo feed at full speed, served from this
// process (a separate process from the service; rendered to memory beforehand
// unless --live-feed), into the real service against a real Postgres, in a
// fresh database; then, in the same database, a bare COPY of the same final
// rows as the baseline. CPU per event is split by the thread that spent it.
import postgres from "postgres";
import {
  benchFlags,
  createBenchDb,
  describeMachine,
  fmt,
  ingestDemo,
  type IngestRun,
  requireCommands,
  run,
} from "./_harness.ts";

const flags = benchFlags({
  events: "300000,1000000",
  writers: "",
  seed: 1,
  "live-feed": false,
});
const sizes = flags.events.split(",").map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
  throw new RangeError(`--events "${flags.events}": not a comma-separated list of counts`);
}
const { seed, "live-feed": liveFeed } = flags;
// Without --writers, the service's default.
const writers = flags.writers === "" ? undefined : Number(flags.writers);

await requireCommands("psql");
console.log(await describeMachine("bench:ingest"));
for (const events of sizes) await measure(events);

async function measure(events: number) {
  const db = await createBenchDb("scorestream_bench_ingest");
  const file = await Deno.makeTempFile({ prefix: "scorestream_copy_", suffix: ".tsv" });
  try {
    const ingest = await ingestDemo({ databaseUrl: db.url, events, writers, seed, liveFeed });
    const copy = await copyBaseline(db.url, file);
    const eventsPerSecond = ingest.events / ingest.seconds;
    const ratio = copy.seconds / ingest.seconds;
    console.log(`
${fmt(events)} events: ingest (feed first byte -> last commit, ${writers ?? "default"} writers, ${
      liveFeed ? "live" : "pre-rendered"
    } feed):
  ${fmt(ingest.events)} events (${fmt(copy.results)} results) in ${fmt(ingest.seconds, 2)} s = ${
      fmt(eventsPerSecond)
    } events/s
${cpuLines(ingest)}
  peak RSS of the service process (VmHWM): ${fmt(ingest.peakRss / 2 ** 20, 1)} MB   target <= 180 MB
  baseline, same run: psql \\copy of the same ${fmt(copy.rows)} final rows into
    copy_baseline (student_id text, exam) PK + index (exam, student_id), logged:
    ${fmt(copy.seconds, 2)} s = ${fmt(copy.rows / copy.seconds)} rows/s
  ratio (COPY time / ingest time for the same final state): ${ratio.toFixed(2)}   target >= 0.8`);
  } finally {
    await Deno.remove(file).catch(() => {});
    await db.drop();
  }
}

/** CPU per event, in all and by thread, the largest first. */
function cpuLines({ cpu, events }: IngestRun): string {
  const perEvent = (seconds: number) => `${fmt(seconds * 1e6 / events, 2)} µs`;
  const threads = [...cpu.threads].sort((a, b) => b[1] - a[1]);
  return [
    `  CPU per event: ${perEvent(cpu.service + cpu.postgres)} in all   target <= 10 µs`,
    `    service ${perEvent(cpu.service)}: ` +
    threads.map(([name, seconds]) => `${name} ${perEvent(seconds)}`).join(", "),
    `    its Postgres backends ${perEvent(cpu.postgres)}`,
    `    not counted: the service's start-up until /healthz answered, ${fmt(cpu.startUp, 2)} s`,
  ].join("\n");
}

/**
 * The baseline: the same final rows, by studentId text as the feed names them,
 * COPYed over the wire into a logged table keyed like results.
 */
async function copyBaseline(url: string, file: string) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`CREATE TABLE copy_baseline (
      student_id text COLLATE "C" NOT NULL, exam int4 NOT NULL, score float8 NOT NULL,
      PRIMARY KEY (student_id, exam))`;
    await sql`CREATE INDEX copy_baseline_exam ON copy_baseline (exam, student_id)`;
    await sql`CHECKPOINT`;
    await run("psql", [
      url,
      "-qc",
      `\\copy (SELECT s.name, r.exam, r.score FROM results r JOIN students s ON s.id = r.student ORDER BY r.exam, s.name) TO '${file}'`,
    ]);
    const started = performance.now();
    await run("psql", [url, "-qc", `\\copy copy_baseline FROM '${file}'`]);
    const seconds = (performance.now() - started) / 1000;
    const [{ rows, results }] = await sql<{ rows: string; results: string }[]>`
      SELECT (SELECT count(*) FROM copy_baseline) AS rows, (SELECT count(*) FROM results) AS results`;
    return { seconds, rows: Number(rows), results: Number(results) };
  } finally {
    await sql.end();
  }
}
