import assert from "node:assert/strict";
import type { StudentTrend } from "../../db/mod.ts";
import { databaseKinds } from "../_db.ts";
import { applyEvents, createApiFixture, seg, SPECIAL_IDS } from "./_fixture.ts";
import { compareUtf8, isClose } from "../oracle.ts";

interface StudentPage {
  students: { studentId: string; count: number; average: number }[];
  next: string | null;
}
interface StudentResults {
  studentId: string;
  count: number;
  average: number;
  results: { exam: number; score: number }[];
  next: number | null;
}

function assertProblem(res: Response, body: unknown, status: number) {
  assert.equal(res.status, status);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const problem = body as { status: number; title: string; detail: string; type: string };
  assert.equal(problem.status, status);
  assert.equal(problem.type, "about:blank");
  assert.equal(typeof problem.detail, "string");
}

for (const kind of databaseKinds) {
  Deno.test(`students API (${kind} database)`, async (t) => {
    await using fx = await createApiFixture(kind);
    const ids = [...fx.scores.keys()].sort(compareUtf8);
    const mean = (id: string) => {
      const s = [...fx.scores.get(id)!.values()];
      return s.reduce((a, b) => a + b, 0) / s.length;
    };

    await t.step(
      "GET /students lists every student by UTF-8 byte order with count and average",
      async () => {
        const { status, body } = await fx.get("/students?limit=1000");
        assert.equal(status, 200);
        const page = body as StudentPage;
        assert.deepEqual(page.students.map((s) => s.studentId), ids);
        assert.equal(page.next, null);
        for (const s of page.students) {
          assert.equal(s.count, fx.scores.get(s.studentId)!.size, s.studentId);
          assert.ok(isClose(s.average, mean(s.studentId)), s.studentId);
        }
        // UTF-8 order differs from JavaScript's UTF-16 order for these two.
        assert.ok(ids.indexOf("\uFF21") < ids.indexOf("😀"));
      },
    );

    await t.step(
      "GET /students returns 100 students by default and the last one as next",
      async () => {
        assert.ok(ids.length > 100);
        const page = (await fx.get("/students")).body as StudentPage;
        assert.equal(page.students.length, 100);
        assert.equal(page.next, ids[99]);
      },
    );

    await t.step(
      "GET /students?after= continues after the cursor, even one no student has",
      async () => {
        const page = (await fx.get(`/students?after=${seg(ids[4])}&limit=3`)).body as StudentPage;
        assert.deepEqual(page.students.map((s) => s.studentId), ids.slice(5, 8));
        assert.equal(page.next, ids[7]);
        const between = (await fx.get(`/students?after=${seg("Student_1")}&limit=1`))
          .body as StudentPage;
        assert.equal(
          between.students[0].studentId,
          ids.find((id) => compareUtf8(id, "Student_1") > 0),
        );
        const end = (await fx.get(`/students?after=${seg(ids.at(-1)!)}`)).body as StudentPage;
        assert.deepEqual(end, { students: [], next: null });
      },
    );

    await t.step(
      "GET /students?prefix= lists the students whose studentId starts with it, paged the same way",
      async () => {
        const starting = (prefix: string) => ids.filter((id) => id.startsWith(prefix));
        for (const prefix of ["Student_1", "S", "a", "日本", "😀", "x", "%", "nobody", "\uFF21"]) {
          const { status, body } = await fx.get(`/students?prefix=${seg(prefix)}&limit=1000`);
          assert.equal(status, 200, prefix);
          const page = body as StudentPage;
          assert.deepEqual(page.students.map((s) => s.studentId), starting(prefix), prefix);
          assert.equal(page.next, null);
          for (const s of page.students) {
            assert.equal(s.count, fx.scores.get(s.studentId)!.size, s.studentId);
          }
        }
        // Page by page, with the cursor of each page, as without a prefix.
        const expected = starting("Student_");
        const seen: string[] = [];
        let after: string | null = null;
        do {
          const cursor: string = after === null ? "" : `&after=${seg(after)}`;
          const page = (await fx.get(`/students?prefix=Student_&limit=7${cursor}`))
            .body as StudentPage;
          assert.ok(page.students.length <= 7);
          seen.push(...page.students.map((s) => s.studentId));
          after = page.next;
        } while (after !== null);
        assert.deepEqual(seen, expected);
        assert.ok(expected.length > 50);
        // Case matters; a cursor before the prefix's range starts at it.
        assert.deepEqual((await fx.get("/students?prefix=student_")).body, {
          students: [],
          next: null,
        });
        const early = (await fx.get("/students?prefix=Student_&after=A&limit=2"))
          .body as StudentPage;
        assert.deepEqual(early.students.map((s) => s.studentId), expected.slice(0, 2));
        for (const q of ["prefix=", "prefix=%00", `prefix=${"x".repeat(129)}`, "prefixx=a"]) {
          const { res, body } = await fx.get(`/students?${q}`);
          assertProblem(res, body, 400);
        }
      },
    );

    await t.step(
      "GET /students rejects limits outside 1..1000 and malformed cursors with 400",
      async () => {
        for (
          const q of [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=1.5",
            "limit=abc",
            "limit=",
            "after=",
            `after=${"x".repeat(129)}`,
            "after=%00",
          ]
        ) {
          const { res, body } = await fx.get(`/students?${q}`);
          assertProblem(res, body, 400);
        }
        assert.equal((await fx.get("/students?limit=1000")).status, 200);
      },
    );

    await t.step(
      "GET /students/{studentId} returns every result by exam with exact scores",
      async () => {
        for (const id of SPECIAL_IDS) {
          const { status, body, res } = await fx.get(`/students/${seg(id)}`);
          assert.equal(status, 200, id);
          assert.equal(res.headers.get("content-type"), "application/json");
          const r = body as StudentResults;
          const expected = [...fx.scores.get(id)!].sort((a, b) => a[0] - b[0]);
          assert.equal(r.studentId, id);
          assert.equal(r.count, expected.length);
          assert.ok(isClose(r.average, mean(id)));
          assert.deepEqual(r.results, expected.map(([exam, score]) => ({ exam, score })));
          assert.equal(r.next, null);
        }
      },
    );

    await t.step(
      "GET /students/{studentId} pages results while count and average cover all of them",
      async () => {
        const all = [...fx.scores.get("Logan_Harber74")!].sort((a, b) => a[0] - b[0]);
        const first = (await fx.get("/students/Logan_Harber74?limit=10")).body as StudentResults;
        assert.equal(first.results.length, 10);
        assert.equal(first.count, all.length);
        assert.ok(isClose(first.average, mean("Logan_Harber74")));
        assert.equal(first.next, all[9][0]);
        const second = (await fx.get(`/students/Logan_Harber74?limit=10&after=${first.next}`))
          .body as StudentResults;
        assert.deepEqual(second.results.map((r) => r.exam), all.slice(10, 20).map((e) => e[0]));
        assert.equal(second.count, all.length);
      },
    );

    await t.step(
      "GET /students/{studentId} accepts limits up to 10000 and rejects 10001 and bad cursors with 400",
      async () => {
        assert.equal((await fx.get("/students/a?limit=10000")).status, 200);
        for (
          const q of [
            "limit=10001",
            "limit=0",
            "after=-1",
            "after=1.5",
            "after=2147483648",
            "after=abc",
          ]
        ) {
          const { res, body } = await fx.get(`/students/a?${q}`);
          assertProblem(res, body, 400);
        }
      },
    );

    await t.step(
      "GET /students/{studentId} answers 404 problem+json for an unknown student",
      async () => {
        const { res, body } = await fx.get("/students/nobody");
        assertProblem(res, body, 404);
        assert.equal((body as { title: string }).title, "Not Found");
      },
    );

    await t.step(
      "GET /students/{studentId} takes 128 characters and rejects 129 with 400",
      async () => {
        assert.equal((await fx.get(`/students/${seg("😀".repeat(128))}`)).status, 200);
        const { res, body } = await fx.get(`/students/${"x".repeat(129)}`);
        assertProblem(res, body, 400);
        assertProblem(...(await problemOf(fx.get(`/students/${seg("😀".repeat(129))}`))), 400);
      },
    );

    await t.step("GET /students/{studentId} rejects control characters with 400", async () => {
      for (const c of ["%00", "a%0A", "%1F", "%7F", "%C2%85"]) {
        const { res, body } = await fx.get(`/students/${c}`);
        assertProblem(res, body, 400);
      }
    });

    await t.step(
      "GET /students/{studentId} answers 304 to a current ETag and a new ETag after a regrade",
      async () => {
        const first = await fx.get("/students/B");
        const etag = first.res.headers.get("etag")!;
        assert.match(etag, /^"v1-.+"$/);
        assert.equal(first.res.headers.get("cache-control"), "no-cache");
        const again = await fx.app.request("/students/B", { headers: { "If-None-Match": etag } });
        assert.equal(again.status, 304);
        assert.equal(await again.text(), "");
        const weak = await fx.app.request("/students/B", {
          headers: { "If-None-Match": `W/${etag}` },
        });
        assert.equal(weak.status, 304);
        await applyEvents(fx.database.db, [["B", 1, 0.42]]);
        const changed = await fx.app.request("/students/B", { headers: { "If-None-Match": etag } });
        assert.equal(changed.status, 200);
        assert.notEqual(changed.headers.get("etag"), etag);
        const r = await changed.json() as StudentResults;
        assert.equal(r.results.find((x) => x.exam === 1)!.score, 0.42);
        fx.scores.get("B")!.set(1, 0.42);
      },
    );

    await t.step(
      "GET /students/{studentId}/trend returns the latest exams oldest first, their average and slope beside the totals of all",
      async () => {
        const all = [...fx.scores.get("Logan_Harber74")!].sort((a, b) => a[0] - b[0]);
        const latest = all.slice(-3);
        const { status, body } = await fx.get("/students/Logan_Harber74/trend?last=3");
        assert.equal(status, 200);
        const trend = body as StudentTrend;
        assert.equal(trend.count, all.length);
        const mean = all.reduce((sum, [, score]) => sum + score, 0) / all.length;
        assert.ok(isClose(trend.average, mean), "count and average cover all results");
        assert.equal(trend.recentCount, 3);
        assert.deepEqual(trend.results, latest.map(([exam, score]) => ({ exam, score })));
        const ys = latest.map((e) => e[1]);
        const avg = ys.reduce((a, b) => a + b, 0) / 3;
        assert.ok(isClose(trend.recentAverage, avg));
        // Least squares over positions 1, 2, 3: slope = (y3 - y1) / 2.
        assert.ok(Math.abs(trend.slope! - (ys[2] - ys[0]) / 2) < 1e-12);
        const def = (await fx.get("/students/Logan_Harber74/trend")).body as typeof trend;
        assert.equal(def.results.length, 10);
        const one = (await fx.get(`/students/${seg("Z")}/trend`)).body as typeof trend;
        assert.equal(one.results.length, fx.scores.get("Z")!.size);
      },
    );

    await t.step(
      "GET /students/{studentId}/trend rejects last outside 2..100 with 400 and unknown students with 404",
      async () => {
        for (const q of ["last=1", "last=101", "last=x"]) {
          const { res, body } = await fx.get(`/students/a/trend?${q}`);
          assertProblem(res, body, 400);
        }
        const { res, body } = await fx.get("/students/nobody/trend");
        assertProblem(res, body, 404);
      },
    );
  });
}

async function problemOf(
  pending: Promise<{ res: Response; body: unknown }>,
): Promise<[Response, unknown]> {
  const { res, body } = await pending;
  return [res, body];
}
