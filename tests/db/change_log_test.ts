import assert from "node:assert/strict";
import { sql } from "kysely";
import postgres from "postgres";
import { applyScores, createChangeLog, pruneChanges, visibleIn } from "../../db/mod.ts";
import { createTestDatabase, databaseKinds, type TestDatabase } from "../_db.ts";

/** Every change in the log after `after`, as `studentId:exam=score`, by transaction. */
async function logged(t: TestDatabase, after = 0n) {
  const log = createChangeLog(t.db);
  const page = await log.read(after, 100, 1_000_000);
  const names = await log.names(page.transactions.flatMap((x) => x.students));
  return {
    page,
    // Sorted here: the log sorts by dictionary key, which names do not show.
    changes: page.transactions.map((x) =>
      x.exams.map((exam, i) => `${names.get(x.students[i])}:${exam}=${x.scores[i]}`).sort()
    ),
  };
}

for (const kind of databaseKinds) {
  Deno.test(`apply_score_ids logs one row per transaction: what it stored or changed, sorted (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await applyScores(
      t.db,
      0,
      { names: ["b", "a", "a"], exams: [1, 2, 1], scores: [0.5, 0.25, 1] },
      [],
    );
    // A regrade, an equal re-send (left out) and a new result.
    await applyScores(
      t.db,
      0,
      { names: ["a", "b", "c"], exams: [2, 1, 7], scores: [0.75, 0.5, 0] },
      [],
    );
    // Only quarantined events: nothing changed, no row.
    await applyScores(t.db, 1, { names: [], exams: [], scores: [] }, [
      { eventId: "9", reason: "invalid_json: x", raw: "{" },
    ]);
    const { page, changes } = await logged(t);
    assert.deepEqual(changes, [["a:1=1", "a:2=0.25", "b:1=0.5"], ["a:2=0.75", "c:7=0"]]);
    assert.ok(page.transactions[0].xid < page.transactions[1].xid);
    for (const { students, exams } of page.transactions) {
      const keys = students.map((s, i) => s * 1e10 + exams[i]);
      assert.deepEqual(keys, [...keys].sort((x, y) => x - y), "sorted by (student, exam)");
    }
    assert.equal(page.full, false);
    assert.ok(page.horizon > page.transactions[1].xid);
    assert.match(page.stream, /^[0-9a-f]{8}$/);
    assert.equal(page.prunedThrough, 0n);
    // After the first transaction, only the second.
    assert.deepEqual((await logged(t, page.transactions[0].xid)).changes, [["a:2=0.75", "c:7=0"]]);
  });

  Deno.test(`the change log reads in pages bounded by transactions and by changes (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    for (let i = 0; i < 5; i++) {
      await applyScores(t.db, 0, { names: ["a", "b"], exams: [i, i], scores: [0.1, 0.2] }, []);
    }
    const log = createChangeLog(t.db);
    const byCount = await log.read(0n, 2, 1_000);
    assert.equal(byCount.transactions.length, 2);
    assert.equal(byCount.full, true);
    // The transaction that reaches 3 changes is the last one read.
    const byChanges = await log.read(0n, 10, 3);
    assert.equal(byChanges.transactions.length, 2);
    assert.equal(byChanges.full, true);
    const rest = await log.read(byChanges.transactions[1].xid, 10, 1_000);
    assert.equal(rest.transactions.length, 3);
    assert.equal(rest.full, false);
  });

  Deno.test(`pruneChanges keeps the last changes or the last milliseconds, whichever is fewer (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    for (let i = 0; i < 4; i++) {
      await applyScores(
        t.db,
        0,
        { names: ["a", "b", "c"], exams: [i, i, i], scores: [1, 1, 1] },
        [],
      );
    }
    const before = (await logged(t)).page.transactions;
    assert.equal(await pruneChanges(t.db, { ms: 600_000, changes: 1_000 }), 0);
    // The newest 6 changes are the last two transactions.
    assert.equal(await pruneChanges(t.db, { ms: 600_000, changes: 6 }), 2);
    const { page } = await logged(t);
    assert.deepEqual(page.transactions.map((x) => x.xid), before.slice(2).map((x) => x.xid));
    assert.equal(page.prunedThrough, before[1].xid);
    // Older than 0 ms: everything goes, and pruned_through never moves back.
    assert.equal(await pruneChanges(t.db, { ms: 0, changes: 1_000 }), 2);
    assert.equal((await logged(t)).page.prunedThrough, before[3].xid);
    assert.equal(await pruneChanges(t.db, { ms: 0, changes: 1_000 }), 0);
    assert.equal((await logged(t)).page.prunedThrough, before[3].xid);
  });

  Deno.test(`a snapshot's bounds tell which logged transactions its results hold (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
    const log = createChangeLog(t.db);
    const seen = await log.snapshot(async (bounds, read) => {
      const results = await read({ of: "all" }, 10);
      return { bounds, results };
    });
    await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.75] }, []);
    const [first, second] = (await log.read(0n, 10, 1_000)).transactions;
    assert.deepEqual(seen.results, [{ studentId: "a", exam: 1, score: 0.5 }]);
    assert.equal(visibleIn(seen.bounds, first.xid), true);
    assert.equal(visibleIn(seen.bounds, second.xid), false);
  });
}

Deno.test({
  name: "the change log's horizon holds back a transaction committed while an older one runs",
  ignore: !databaseKinds.includes("server"),
  async fn() {
    await using t = await createTestDatabase("server");
    const other = postgres(t.url, { max: 1, onnotice: () => {} });
    try {
      await other.begin(async (tx) => {
        // An older transaction, still running, that will log a change.
        await tx`SELECT apply_score_ids(1::int2, '{x}'::text[], '{-1}'::int4[], '{1}'::int4[],
          '{0.5}'::float8[], '{}'::text[], '{}'::text[], '{}'::text[])`;
        await applyScores(t.db, 0, { names: ["y"], exams: [2], scores: [0.25] }, []);
        const [{ running }] = await tx<
          { running: string }[]
        >`SELECT pg_current_xact_id()::text AS running`;
        const page = await createChangeLog(t.db).read(0n, 10, 1_000);
        assert.equal(page.transactions.length, 0, "nothing below the running transaction");
        assert.equal(page.horizon, BigInt(running));
      });
      const { changes } = await logged(t);
      assert.deepEqual(changes, [["x:1=0.5"], ["y:2=0.25"]]);
    } finally {
      await other.end();
    }
  },
});

Deno.test("the change log is empty after the migration, and its stream differs per database", async () => {
  await using a = await createTestDatabase("embedded");
  await using b = await createTestDatabase("embedded");
  const stream = async (t: TestDatabase) =>
    (await sql<{ stream: string }>`SELECT stream FROM result_changes_window`.execute(t.db)).rows;
  assert.equal((await stream(a)).length, 1);
  assert.notEqual((await stream(a))[0].stream, (await stream(b))[0].stream);
  assert.deepEqual((await logged(a)).changes, []);
});
