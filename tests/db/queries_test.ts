import assert from "node:assert/strict";
import { sql } from "kysely";
import { applyScores, createDb, createQueries, ReadError } from "../../db/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";
import { applyEvents, type ScoreEvent } from "../api/_fixture.ts";

for (const kind of databaseKinds) {
  Deno.test(`read queries (${kind} database)`, async (t) => {
    await using database = await createTestDatabase(kind);
    const queries = createQueries(database.db);

    await t.step(
      "an empty database has empty lists, no student or exam, and zero totals",
      async () => {
        assert.equal(await queries.students({ limit: 10 }), '{"students":[],"next":null}');
        assert.equal(await queries.exams({ limit: 10 }), '{"exams":[],"next":null}');
        assert.equal(await queries.student("a", { limit: 10 }), null);
        assert.equal(await queries.studentVersion("a"), null);
        assert.equal(await queries.studentTrend("a", 5), null);
        assert.equal(await queries.exam(1, { limit: 10 }), null);
        assert.equal(await queries.examVersion(1), null);
        assert.equal(await queries.examHistogram(1, 10), null);
        assert.equal(await queries.examTop(1, 10), null);
        assert.equal(await queries.examStanding(1, "a"), null);
        assert.deepEqual(await queries.totals(), {
          students: 0,
          exams: 0,
          results: 0,
          quarantined: {},
        });
      },
    );

    await t.step("scores and averages come back exactly as stored, subnormal and all", async () => {
      const scores = [0, 1, 0.1 + 0.2, 0.9999999999999999, 5e-324, 1e-7, 0.123456789012345678];
      await applyEvents(database.db, scores.map((s, i): ScoreEvent => [`exact${i}`, 9, s]));
      const exam = JSON.parse((await queries.exam(9, { limit: 100 }))!.body);
      assert.deepEqual(exam.results.map((r: { score: number }) => r.score), scores);
      for (const [i, s] of scores.entries()) {
        const student = JSON.parse((await queries.student(`exact${i}`, { limit: 10 }))!.body);
        assert.equal(student.average, s);
      }
    });

    await t.step("totals count students, exams and results from the aggregates", async () => {
      await applyEvents(database.db, [["t1", 1, 0.5], ["t1", 2, 0.5], ["t2", 2, 0.25]]);
      assert.deepEqual(await queries.totals(), {
        students: 9,
        exams: 3,
        results: 10,
        quarantined: {},
      });
    });

    await t.step("a student's version changes when their results do, and only then", async () => {
      const before = await queries.studentVersion("t1");
      const other = await queries.studentVersion("t2");
      await applyEvents(database.db, [["t1", 1, 0.75]]);
      const after = await queries.studentVersion("t1");
      assert.notEqual(after, before);
      assert.equal(await queries.studentVersion("t2"), other);
      assert.equal((await queries.student("t1", { limit: 1 }))!.version, after);
    });

    await t.step("an exam's version changes when its results do, and only then", async () => {
      const before = await queries.examVersion(2);
      const other = await queries.examVersion(9);
      await applyEvents(database.db, [["t2", 2, 0.3]]);
      const after = await queries.examVersion(2);
      assert.notEqual(after, before);
      assert.equal(await queries.examVersion(9), other);
      assert.equal((await queries.exam(2, { limit: 1 }))!.version, after);
    });

    await t.step(
      "an exam's page ends early past maxPageBytes, and next still walks them all",
      async () => {
        const small = createQueries(database.db, { maxPageBytes: 120 });
        const all = JSON.parse((await queries.exam(9, { limit: 100 }))!.body).results;
        const walked: unknown[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = JSON.parse((await small.exam(9, { after, limit: 100 }))!.body);
          assert.ok(page.results.length >= 1 && page.results.length < all.length);
          walked.push(...page.results);
          if (page.next === null) break;
          after = page.next;
        }
        assert.deepEqual(walked, all);
        const tiny = createQueries(database.db, { maxPageBytes: 1 });
        const one = JSON.parse((await tiny.exam(9, { limit: 100 }))!.body);
        assert.equal(one.results.length, 1);
        assert.equal(one.next, one.results[0].studentId);
      },
    );

    await t.step(
      "a student's and an exam's totals and page come from one snapshot under concurrent writes",
      async () => {
        const exams = Array.from({ length: 200 }, (_, i) => 1000 + i);
        const students = Array.from({ length: 200 }, (_, i) => `snap${String(i).padStart(3, "0")}`);
        // One call is one transaction: it sets every score of the student and of the exam at once.
        const write = (score: number) =>
          applyScores(database.db, 0, {
            names: [...exams.map(() => "snapshot"), ...students],
            exams: [...exams, ...students.map(() => 5000)],
            scores: [...exams.map(() => score), ...students.map(() => score)],
          }, []);
        await write(0.5);
        let writing = true;
        const seen = new Set<number>();
        const writer = (async () => {
          for (let i = 1; writing && i < 400; i++) await write((i % 10) / 10);
        })();
        try {
          for (let reads = 0; reads < 40; reads++) {
            const [student, exam] = await Promise.all([
              queries.student("snapshot", { limit: 1000 }),
              queries.exam(5000, { limit: 1000 }),
            ]);
            for (const body of [JSON.parse(student!.body), JSON.parse(exam!.body)]) {
              assert.equal(body.count, 200);
              assert.equal(body.results.length, 200);
              const scores = new Set<number>(body.results.map((r: { score: number }) => r.score));
              assert.equal(scores.size, 1, "every result is from the same write");
              seen.add([...scores][0]);
              assert.ok(Math.abs(body.average - [...scores][0]) < 1e-9, "totals match the page");
            }
          }
        } finally {
          writing = false;
          await writer;
        }
        assert.ok(seen.size > 1, "the reads ran while writes went on");
      },
    );
  });
}

Deno.test("a read from a database that cannot be reached fails with ReadError unavailable", async () => {
  const { db, close } = createDb({ url: "postgres://postgres@127.0.0.1:1/nothing" });
  try {
    await assert.rejects(createQueries(db).totals(), (error) => {
      assert.ok(error instanceof ReadError);
      assert.equal(error.code, "unavailable");
      return true;
    });
  } finally {
    await close();
  }
});

if (databaseKinds.includes("server")) {
  Deno.test("a read past the statement timeout fails with ReadError timeout (server database)", async () => {
    await using database = await createTestDatabase("server");
    const api = createDb({ url: database.url, statementTimeoutMs: 100 });
    try {
      await database.db.transaction().execute(async (tx) => {
        await sql`LOCK TABLE students IN ACCESS EXCLUSIVE MODE`.execute(tx);
        await assert.rejects(createQueries(api.db).totals(), (error) => {
          assert.ok(error instanceof ReadError);
          assert.equal(error.code, "timeout");
          return true;
        });
      });
    } finally {
      await api.close();
    }
  });
}
