import assert from "node:assert/strict";
import { sql } from "kysely";
import postgres from "postgres";
import { applyScores, classifyError } from "../../db/mod.ts";
import {
  createTestDatabase,
  databaseKinds,
  type TestDatabase,
  untilAStatementWaitsForALock,
} from "../_db.ts";

/**
 * Runs `later` while another session holds an uncommitted apply_score_ids of
 * one result, as another writer would, and commits once `later`'s statement
 * waits for it: pg_stat_activity shows a statement of the database waiting for
 * a lock (and the test fails if none ever does).
 */
async function concurrently(
  t: TestDatabase,
  writer: number,
  student: number,
  exam: number,
  score: number,
  later: () => Promise<void>,
) {
  const other = postgres(t.url, { max: 1, onnotice: () => {} });
  let pending: Promise<void> | undefined;
  try {
    await other.begin(async (tx) => {
      await tx`SELECT apply_score_ids(${writer}::int2, '{}'::text[], ARRAY[${student}]::int4[],
        ARRAY[${exam}]::int4[], ARRAY[${score}]::float8[], '{}'::text[], '{}'::text[], '{}'::text[])`;
      pending = later();
      await untilAStatementWaitsForALock(t, "a statement waiting for the uncommitted one");
    });
  } finally {
    await other.end();
  }
  await pending;
}

async function state(t: TestDatabase) {
  const results = await sql<{ name: string; exam: number; score: number }>`
    SELECT s.name, r.exam, r.score FROM results r JOIN students s ON s.id = r.student
    ORDER BY s.name, r.exam`.execute(t.db);
  const students = await sql<{ name: string; count: number; sum: number }>`
    SELECT s.name, count(*)::int4 AS count, sum(r.score) AS sum
    FROM results r JOIN students s ON s.id = r.student
    GROUP BY s.name ORDER BY s.name`.execute(t.db);
  const exams = await sql<{ exam: number; count: number; sum: number }>`
    SELECT exam, sum(count)::int4 AS count, sum(sum) AS sum FROM exam_totals
    GROUP BY exam ORDER BY exam`.execute(t.db);
  return { results: results.rows, students: students.rows, exams: exams.rows };
}

for (const kind of databaseKinds) {
  Deno.test(`applyScores() stores results and exact aggregates (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await applyScores(t.db, 0, {
      names: ["a", "a", "b"],
      exams: [1, 2, 1],
      scores: [0.5, 0.25, 1],
    }, []);
    assert.deepEqual(await state(t), {
      results: [
        { name: "a", exam: 1, score: 0.5 },
        { name: "a", exam: 2, score: 0.25 },
        { name: "b", exam: 1, score: 1 },
      ],
      students: [{ name: "a", count: 2, sum: 0.75 }, { name: "b", count: 1, sum: 1 }],
      exams: [{ exam: 1, count: 2, sum: 1.5 }, { exam: 2, count: 1, sum: 0.25 }],
    });
  });

  Deno.test(`applyScores() replaces a regraded score without counting it twice (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
    await applyScores(t.db, 1, { names: ["a"], exams: [1], scores: [0.75] }, []);
    const s = await state(t);
    assert.deepEqual(s.results, [{ name: "a", exam: 1, score: 0.75 }]);
    assert.deepEqual(s.students, [{ name: "a", count: 1, sum: 0.75 }]);
    assert.deepEqual(s.exams, [{ exam: 1, count: 1, sum: 0.75 }]);
  });

  Deno.test(`applyScores() regrades, adds to a stored exam and starts a new one in one batch (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await applyScores(t.db, 0, { names: ["a", "b"], exams: [1, 1], scores: [0.5, 0.25] }, []);
    await applyScores(t.db, 0, {
      names: ["a", "c", "a", "b"],
      exams: [1, 1, 2, 1],
      scores: [0.75, 0.5, 1, 0.25],
    }, []);
    assert.deepEqual(await state(t), {
      results: [
        { name: "a", exam: 1, score: 0.75 },
        { name: "a", exam: 2, score: 1 },
        { name: "b", exam: 1, score: 0.25 },
        { name: "c", exam: 1, score: 0.5 },
      ],
      students: [
        { name: "a", count: 2, sum: 1.75 },
        { name: "b", count: 1, sum: 0.25 },
        { name: "c", count: 1, sum: 0.5 },
      ],
      exams: [{ exam: 1, count: 3, sum: 1.5 }, { exam: 2, count: 1, sum: 1 }],
    });
  });

  Deno.test(`applyScores() applied twice leaves the same state (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const rows = { names: ["a", "b", "c"], exams: [7, 7, 8], scores: [0.1, 0.2, 0.3] };
    const quarantine = [{ eventId: "9", reason: "invalid_json: x", raw: "{" }];
    await applyScores(t.db, 0, rows, quarantine);
    const once = await state(t);
    await applyScores(t.db, 0, rows, quarantine);
    assert.deepEqual(await state(t), once);
    const q = await sql<{ n: number }>`SELECT count(*)::int4 AS n FROM quarantine`.execute(t.db);
    assert.equal(q.rows[0].n, 1);
  });

  Deno.test(`applyScores() keeps float scores exact (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const scores = [0.1 + 0.2, 1 / 3, 5e-324, 0.9999999999999999];
    await applyScores(t.db, 0, { names: ["a", "b", "c", "d"], exams: [1, 1, 1, 1], scores }, []);
    assert.deepEqual((await state(t)).results.map((r) => r.score), scores);
  });

  Deno.test(`applyScores() sorts studentIds by their UTF-8 bytes (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const names = ["b", "B", "é", "a", "Z", "😀", "~"];
    await applyScores(
      t.db,
      0,
      { names, exams: names.map(() => 1), scores: names.map(() => 1) },
      [],
    );
    const bytes = (s: string) => [...new TextEncoder().encode(s)];
    const expected = [...names].sort((x, y) => {
      const [a, b] = [bytes(x), bytes(y)];
      for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
      return a.length - b.length;
    });
    assert.deepEqual((await state(t)).students.map((s) => s.name), expected);
  });

  Deno.test(`applyScores() quarantines an event of any id length, once per replay (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    // 3,000 CJK characters that do not compress: 9,000 bytes, more than a B-tree row holds.
    const eventId = String.fromCodePoint(
      ...Array.from({ length: 3_000 }, (_, i) => 0x4e00 + (i * 7919) % 20_000),
    );
    const row = { eventId, reason: "invalid_json: x", raw: "not json" };
    await applyScores(t.db, 0, { names: [], exams: [], scores: [] }, [row]);
    await applyScores(t.db, 0, { names: [], exams: [], scores: [] }, [row]);
    const { rows } = await sql<{ event_id: string }>`SELECT event_id FROM quarantine`.execute(t.db);
    assert.deepEqual(rows.map((r) => r.event_id), [eventId]);
  });

  Deno.test(`applyScores() fails with a data error for rows that are not coalesced (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const error = await applyScores(t.db, 0, {
      names: ["a", "a"],
      exams: [1, 1],
      scores: [0.1, 0.2],
    }, []).then(() => undefined, (e) => e);
    assert.ok(error, "a batch that is not coalesced must fail");
    assert.equal(classifyError(error), "data");
    assert.match(String(error), /rows must be coalesced/);
  });

  Deno.test(`applyScores() fails with a data error for a stored result given twice, and changes nothing (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
    const before = await state(t);
    const error = await applyScores(t.db, 0, {
      names: ["b", "a", "a"],
      exams: [1, 1, 1],
      scores: [0.3, 0.1, 0.2],
    }, []).then(() => undefined, (e) => e);
    assert.ok(error, "a batch that is not coalesced must fail");
    assert.equal(classifyError(error), "data");
    assert.match(String(error), /rows must be coalesced/);
    assert.deepEqual(await state(t), before);
  });
}

if (databaseKinds.includes("server")) {
  // While writer 0's statement stores (a, 500), another statement, uncommitted,
  // has stored (a, 500) too and commits only after writer 0's has started.
  for (
    const [other, name] of [
      // An earlier statement of writer 0 (one abandoned after its deadline, say);
      // the writer knows "a" by its key from an earlier batch.
      [0, "waits for a statement of the same writer still running, then applies on top of it"],
      // Writer 1 of a process with another writer count, still finishing: writer
      // 0's snapshot saw no result of exam 500, so it tries to insert.
      [1, "regrades a result another writer's statement stored meanwhile"],
    ] as const
  ) {
    Deno.test(`applyScores() ${name} (server)`, async () => {
      await using t = await createTestDatabase("server");
      const keys = new Map<string, number>();
      await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, [], keys);
      await concurrently(
        t,
        other,
        keys.get("a")!,
        500,
        0.1,
        () => applyScores(t.db, 0, { names: ["a"], exams: [500], scores: [0.9] }, [], keys),
      );
      assert.deepEqual(await state(t), {
        results: [{ name: "a", exam: 1, score: 0.5 }, { name: "a", exam: 500, score: 0.9 }],
        students: [{ name: "a", count: 2, sum: 1.4 }],
        exams: [{ exam: 1, count: 1, sum: 0.5 }, { exam: 500, count: 1, sum: 0.9 }],
      });
    });
  }

  Deno.test("applyScores() regrades from the score another writer's statement committed meanwhile (server)", async () => {
    await using t = await createTestDatabase("server");
    // (a, 1) holds 0.5; writer 1 of another process regrades it to 0.9 and
    // commits after writer 0's statement, regrading it to 0.1, has started.
    const keys = new Map<string, number>();
    await applyScores(t.db, 0, { names: ["a", "b"], exams: [1, 1], scores: [0.5, 0.25] }, [], keys);
    await concurrently(
      t,
      1,
      keys.get("a")!,
      1,
      0.9,
      () => applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.1] }, [], keys),
    );
    const { results, exams: [exam] } = await state(t);
    assert.deepEqual(results.map((r) => r.score), [0.1, 0.25]);
    assert.equal(exam.count, 2);
    // The old score read before writer 1's commit would leave 0.75 here.
    assert.ok(Math.abs(exam.sum - 0.35) < 1e-9, `exam 1's sum is ${exam.sum}, not 0.35`);
  });
}

for (const kind of databaseKinds) {
  Deno.test(`apply_score_ids probes results by key, however few there were when its session began (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    // One session throughout: PL/pgSQL caches its plans per session.
    await t.db.connection().execute(async (session) => {
      // Calls on an almost empty database: a large batch first, then small ones,
      // each with new results of a known exam. After five calls PL/pgSQL may
      // plan once for all (generic), for the sizes of then, and keep that plan.
      const first = Array.from({ length: 2_000 }, (_, i) => `a${i}`);
      await applyScores(
        session,
        0,
        { names: first, exams: first.map(() => 1), scores: first.map(() => 0.5) },
        [],
      );
      for (let call = 0; call < 10; call++) {
        await applyScores(
          session,
          0,
          { names: [`s${call}`, `t${call}`], exams: [1, 1], scores: [0.5, 0.25] },
          [],
        );
      }
      await sql`INSERT INTO students (name) SELECT 'bulk' || g FROM generate_series(1, 20000) g`
        .execute(session);
      await sql`
        INSERT INTO results (student, exam, score)
        SELECT s.id, e, 0.5 FROM students s, generate_series(1, 5) e WHERE s.name LIKE 'bulk%'`
        .execute(session);
      const scanned = await session.transaction().execute(async (trx) => {
        // A regrade and a new result for exam 1, which now has 22,020 results.
        await applyScores(trx, 0, { names: ["s0", "u"], exams: [1, 1], scores: [1, 0.75] }, []);
        // Rows read by sequential scans in this transaction (bitmap scans count
        // as scans in seq_scan, but their rows do not count here).
        const { rows } = await sql<{ seq_tup_read: string }>`
          SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'results'`
          .execute(trx);
        return Number(rows[0].seq_tup_read);
      });
      assert.equal(scanned, 0, "apply_score_ids read through results for two rows");
    });
    const { rows } = await sql<{ n: number; score: number }>`
      SELECT count(*)::int4 AS n, max(score) AS score FROM results WHERE exam = 1`.execute(t.db);
    assert.deepEqual(rows[0], { n: 22021, score: 1 });
  });
}
