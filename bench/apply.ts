// deno task bench:apply [--events 1000000] [--batch 25000] [--seed 1]
//
// The database side of ingest alone: the demo feed's events, split by writer
// as the router splits them, cut into batches of --batch events as a writer
// commits them and coalesced, then applied with applyScores() one statement at
// a time on one connection. Ours is the schema at the latest migration; the
// baseline, in the same run and batch by batch in turn, is the first schema
// (migration 0001: a running row per student, every row inserted with ON
// CONFLICT in key order). Prints the statements' wall time per event (commit
// included) and bytes per result (every table with its indexes) for each.
import { sql } from "kysely";
import { Migrator } from "kysely/migration";
import { applyScores, createDb, type Db, migrateToLatest } from "../db/mod.ts";
import * as initial from "../db/migrations/0001_initial.ts";
import { scoreEventAt } from "../ingest/demo_feed.ts";
import { shardOf } from "../ingest/shard.ts";
import { coalesce } from "../workers/coalesce.ts";
import type { Batch } from "../workers/mod.ts";
import { benchFlags, createBenchDb, describeMachine, fmt } from "./_harness.ts";

const { events, batch: batchEvents, seed } = benchFlags({
  events: 1_000_000,
  batch: 25_000,
  seed: 1,
});
const WRITERS = 2;

console.log(await describeMachine("bench:apply"));

const parts = Array.from({ length: WRITERS }, () => ({
  names: [] as string[],
  exams: [] as number[],
  scores: [] as number[],
}));
const batches: { writer: number; batch: Batch }[] = [];
const cut = (writer: number) => {
  const { names, exams, scores } = parts[writer];
  batches.push({
    writer,
    batch: {
      id: batches.length,
      names,
      chars: names.reduce((n, name) => n + name.length, 0),
      exams: new Int32Array(exams),
      scores: new Float64Array(scores),
      quarantine: [],
    },
  });
  parts[writer] = { names: [], exams: [], scores: [] };
};
for (let i = 0; i < events; i++) {
  const { studentId, exam, score } = scoreEventAt(seed, i);
  const writer = shardOf(studentId, WRITERS);
  const part = parts[writer];
  part.names.push(studentId);
  part.exams.push(exam);
  part.scores.push(score);
  if (part.names.length === batchEvents) cut(writer);
}
for (let writer = 0; writer < WRITERS; writer++) if (parts[writer].names.length > 0) cut(writer);

interface Subject {
  label: string;
  db: Db;
  drop(): Promise<void>;
  keys: Map<string, number>[];
  ms: number;
}

async function subject(label: string, name: string, latest: boolean): Promise<Subject> {
  const bench = await createBenchDb(name);
  const db = createDb({ url: bench.url, max: 1 });
  if (latest) {
    await migrateToLatest(db.db);
  } else {
    const migrator = new Migrator({
      db: db.db,
      provider: { getMigrations: () => Promise.resolve({ "0001_initial": initial }) },
    });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
  }
  return {
    label,
    db,
    drop: async () => {
      await db.close();
      await bench.drop();
    },
    keys: Array.from({ length: WRITERS }, () => new Map()),
    ms: 0,
  };
}

const subjects = [
  await subject("ours (latest schema)", "scorestream_bench_apply", true),
  await subject("baseline (schema 0001)", "scorestream_bench_apply_0001", false),
];
try {
  for (const { writer, batch } of batches) {
    const rows = coalesce([batch]);
    for (const s of subjects) {
      const started = performance.now();
      await applyScores(s.db.db, writer, rows, [], s.keys[writer]);
      s.ms += performance.now() - started;
    }
  }
  console.log(
    `\n${fmt(events)} events in ${batches.length} batches of up to ${
      fmt(batchEvents)
    } (${WRITERS} writers' shares, coalesced), one statement at a time:`,
  );
  for (const s of subjects) {
    const { rows: [{ results, bytes }] } = await sql<{ results: string; bytes: string }>`
      SELECT (SELECT count(*) FROM results) AS results,
             (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
              WHERE c.relkind = 'r') AS bytes`.execute(s.db.db);
    console.log(
      `  ${s.label.padEnd(24)} ${fmt(s.ms / 1000, 2)} s = ${
        fmt(s.ms * 1000 / events, 2)
      } µs/event` +
        `   tables and indexes ${fmt(Number(bytes) / Number(results), 1)} B/result`,
    );
  }
  console.log(`ratio (baseline time / ours): ${fmt(subjects[1].ms / subjects[0].ms, 2)}`);
} finally {
  for (const s of subjects) await s.drop();
}
