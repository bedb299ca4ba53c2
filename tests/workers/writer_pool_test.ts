import assert from "node:assert/strict";
import { sql } from "kysely";
import { type Ack, type Batch, startWriters } from "../../workers/mod.ts";
import { shardOf } from "../../ingest/shard.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";

/** Regrades of the same students, spread over many batches per writer. */
function plan(writers: number, batches: number) {
  const sent: { writer: number; batch: Batch }[] = [];
  const last = new Map<string, number>();
  let id = 1;
  for (let b = 0; b < batches; b++) {
    const rows = Array.from({ length: 40 }, (_, i) => {
      const name = `Student_${(b * 7 + i) % 50}`;
      const exam = 1000 + (i % 3);
      const score = ((b * 40 + i) % 997) / 997;
      last.set(`${name}/${exam}`, score);
      return { name, exam, score, writer: shardOf(name, writers) };
    });
    for (let w = 0; w < writers; w++) {
      const mine = rows.filter((r) => r.writer === w);
      if (mine.length === 0) continue;
      sent.push({
        writer: w,
        batch: {
          id: id++,
          names: mine.map((r) => r.name),
          chars: mine.reduce((n, r) => n + r.name.length, 0),
          exams: new Int32Array(mine.map((r) => r.exam)),
          scores: new Float64Array(mine.map((r) => r.score)),
          quarantine: [],
        },
      });
    }
  }
  return { sent, last };
}

for (const kind of databaseKinds) {
  Deno.test(`writer pool keeps each student's order with several writers, through a crash (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const acks: Ack[] = [];
    const restarts: number[] = [];
    let done: () => void;
    const all = new Promise<void>((resolve) => done = resolve);
    const { sent, last } = plan(3, 60);
    const pool = startWriters({
      count: 3,
      databaseUrl: t.url,
      maxBatchEvents: 50,
      onAck: (_, ack) => {
        acks.push(ack);
        if (acks.flatMap((a) => a.ids).length >= sent.length) done();
      },
      onRestart: (writer) => restarts.push(writer),
    });
    sent.forEach(({ writer, batch }, i) => {
      pool.send(writer, batch);
      if (i === sent.length >> 1) pool.crash(1);
    });
    await all;
    assert.deepEqual(pool.pending(), [0, 0, 0]);
    await pool.close();

    assert.deepEqual(restarts, [1]);
    const { rows } = await sql<{ name: string; exam: number; score: number }>`
      SELECT s.name, r.exam, r.score FROM results r JOIN students s ON s.id = r.student`
      .execute(t.db);
    assert.deepEqual(
      new Map(rows.map((r) => [`${r.name}/${r.exam}`, r.score])),
      last,
    );
    const totals = await sql<{ count: number }>`
      SELECT sum(count)::int4 AS count FROM exam_totals`.execute(t.db);
    assert.equal(totals.rows[0].count, last.size, "no result counted twice");
  });
}

if (databaseKinds.includes("server")) {
  Deno.test("writer pool is ready once every writer has its connection open (server)", async () => {
    await using t = await createTestDatabase("server");
    const pool = startWriters({ count: 2, databaseUrl: t.url, onAck: () => {} });
    try {
      await pool.ready();
      // Before any batch: the connections were opened ahead of need.
      const { rows } = await sql<{ name: string }>`
        SELECT application_name AS name FROM pg_stat_activity
        WHERE datname = current_database() AND application_name LIKE 'scorestream-writer-%'
        ORDER BY 1`.execute(t.db);
      assert.deepEqual(rows.map((r) => r.name), ["scorestream-writer-0", "scorestream-writer-1"]);
    } finally {
      await pool.close();
    }
  });
}

Deno.test("writer pool is ready, and its writers retry, when Postgres cannot be reached", async () => {
  const retried = Promise.withResolvers<void>();
  const pool = startWriters({
    count: 1,
    // Nothing listens on port 1.
    databaseUrl: "postgres://postgres@127.0.0.1:1/none",
    onAck: () => {},
    onRetry: () => retried.resolve(),
  });
  try {
    await pool.ready();
    pool.send(0, {
      id: 1,
      names: ["a"],
      chars: 1,
      exams: new Int32Array([1]),
      scores: new Float64Array([0.5]),
      quarantine: [],
    });
    await retried.promise;
    assert.deepEqual(pool.pending(), [1]);
  } finally {
    await pool.close(AbortSignal.timeout(0));
  }
});
