import assert from "node:assert/strict";
import { databaseKinds } from "../_db.ts";
import { applyEvents, createApiFixture, EXAMS, seg } from "./_fixture.ts";
import { compareUtf8, isClose } from "../oracle.ts";

interface ExamPage {
  exams: { exam: number; count: number; average: number }[];
  next: number | null;
}
interface ExamResults {
  exam: number;
  count: number;
  average: number;
  results: { studentId: string; score: number }[];
  next: string | null;
}

async function assertProblem(pending: Response | Promise<Response>, status: number) {
  const res = await pending;
  assert.equal(res.status, status, res.url);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const body = await res.json();
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, "string");
}

const MALFORMED_EXAMS = [
  "-1",
  "1.5",
  "0.0",
  "2147483648",
  "99999999999",
  "abc",
  "1e3",
  "0x10",
  "+1",
  "%201",
  "1%20",
  "NaN",
  "Infinity",
  "１２",
];

for (const kind of databaseKinds) {
  Deno.test(`exams API (${kind} database)`, async (t) => {
    await using fx = await createApiFixture(kind);
    const byExam = new Map<number, Map<string, number>>();
    for (const [id, exams] of fx.scores) {
      for (const [exam, score] of exams) {
        if (!byExam.has(exam)) byExam.set(exam, new Map());
        byExam.get(exam)!.set(id, score);
      }
    }
    const exams = [...byExam.keys()].sort((a, b) => a - b);
    const mean = (exam: number) => {
      const s = [...byExam.get(exam)!.values()];
      return s.reduce((a, b) => a + b, 0) / s.length;
    };
    const request = (path: string, init?: RequestInit) => fx.app.request(path, init);

    await t.step("GET /exams lists every exam by number with count and average", async () => {
      const page = (await fx.get("/exams?limit=1000")).body as ExamPage;
      assert.deepEqual(page.exams.map((e) => e.exam), exams);
      assert.equal(page.next, null);
      for (const e of page.exams) {
        assert.equal(e.count, byExam.get(e.exam)!.size);
        assert.ok(isClose(e.average, mean(e.exam)));
      }
    });

    await t.step(
      "GET /exams pages with limit and after, next being the last exam of the page",
      async () => {
        const first = (await fx.get("/exams?limit=2")).body as ExamPage;
        assert.deepEqual(first.exams.map((e) => e.exam), exams.slice(0, 2));
        assert.equal(first.next, exams[1]);
        const second = (await fx.get(`/exams?limit=2&after=${first.next}`)).body as ExamPage;
        assert.deepEqual(second.exams.map((e) => e.exam), exams.slice(2, 4));
        const last = (await fx.get(`/exams?after=${exams.at(-2)}`)).body as ExamPage;
        assert.deepEqual(last.exams.map((e) => e.exam), [exams.at(-1)]);
        assert.equal(last.next, null);
      },
    );

    await t.step("GET /exams rejects bad limits and malformed exam cursors with 400", async () => {
      for (
        const q of [
          "limit=0",
          "limit=1001",
          "limit=x",
          ...MALFORMED_EXAMS.map((e) => `after=${e}`),
        ]
      ) {
        await assertProblem(request(`/exams?${q}`), 400);
      }
    });

    await t.step(
      "GET /exams/{exam} returns the results by studentId in UTF-8 byte order",
      async () => {
        for (const exam of EXAMS) {
          const { status, body } = await fx.get(`/exams/${exam}`);
          assert.equal(status, 200, String(exam));
          const r = body as ExamResults;
          const expected = [...byExam.get(exam)!].sort((a, b) => compareUtf8(a[0], b[0]));
          assert.equal(r.exam, exam);
          assert.equal(r.count, expected.length);
          assert.ok(isClose(r.average, mean(exam)));
          assert.deepEqual(r.results, expected.map(([studentId, score]) => ({ studentId, score })));
          assert.equal(r.next, null);
        }
      },
    );

    await t.step(
      "GET /exams/{exam} pages results while count and average cover all of them",
      async () => {
        const all = [...byExam.get(1559)!.keys()].sort(compareUtf8);
        const first = (await fx.get("/exams/1559?limit=7")).body as ExamResults;
        assert.deepEqual(first.results.map((r) => r.studentId), all.slice(0, 7));
        assert.equal(first.count, all.length);
        assert.equal(first.next, all[6]);
        const second = (await fx.get(`/exams/1559?limit=7&after=${seg(first.next!)}`))
          .body as ExamResults;
        assert.deepEqual(second.results.map((r) => r.studentId), all.slice(7, 14));
        assert.ok(isClose(second.average, mean(1559)));
      },
    );

    await t.step(
      "GET /exams/{exam} accepts limits up to 10000, leading zeros, and rejects bad cursors",
      async () => {
        assert.equal((await request("/exams/1559?limit=10000")).status, 200);
        assert.equal(((await fx.get("/exams/0007")).body as ExamResults).exam, 7);
        for (
          const q of ["limit=10001", "limit=0", "after=", `after=${"y".repeat(129)}`, "after=%01"]
        ) {
          await assertProblem(request(`/exams/1559?${q}`), 400);
        }
      },
    );

    await t.step(
      "GET /exams/{exam} rejects negative, fractional, too large and non-numeric exams with 400",
      async () => {
        for (const exam of MALFORMED_EXAMS) await assertProblem(request(`/exams/${exam}`), 400);
      },
    );

    await t.step(
      "GET /exams/{exam} answers 404 for an exam with no results, and serves the largest exam",
      async () => {
        await assertProblem(request("/exams/42"), 404);
        assert.equal((await request("/exams/2147483647")).status, 200);
      },
    );

    await t.step(
      "GET /exams/{exam} answers 304 to a current ETag and a new ETag after a regrade",
      async () => {
        const first = await request("/exams/7");
        const etag = first.headers.get("etag")!;
        await first.body?.cancel();
        const again = await request("/exams/7", { headers: { "If-None-Match": `"x", ${etag}` } });
        assert.equal(again.status, 304);
        await applyEvents(fx.database.db, [["Z", 7, 0.111]]);
        const changed = await request("/exams/7", { headers: { "If-None-Match": etag } });
        assert.equal(changed.status, 200);
        assert.notEqual(changed.headers.get("etag"), etag);
        const r = await changed.json() as ExamResults;
        assert.equal(r.results.find((x) => x.studentId === "Z")!.score, 0.111);
        byExam.get(7)!.set("Z", 0.111);
        fx.scores.get("Z")!.set(7, 0.111);
      },
    );

    await t.step(
      "GET /exams/{exam} never serves a reused body once the exam has changed",
      async () => {
        const read = async () => (await fx.get("/exams/1559")).body as ExamResults;
        const before = await read();
        assert.deepEqual(await read(), before);
        await applyEvents(fx.database.db, [["Student_1", 1559, 0.999], ["newcomer", 1559, 0.5]]);
        const after = await read();
        assert.equal(after.count, before.count + 1);
        assert.equal(after.results.find((r) => r.studentId === "Student_1")!.score, 0.999);
        assert.ok(after.results.some((r) => r.studentId === "newcomer"));
        byExam.get(1559)!.set("Student_1", 0.999).set("newcomer", 0.5);
        fx.scores.get("Student_1")!.set(1559, 0.999);
        fx.scores.set("newcomer", new Map([[1559, 0.5]]));
      },
    );

    await t.step(
      "GET /exams/{exam}/histogram counts scores in equal bins, a score of 1 in the last",
      async () => {
        const scores = [...byExam.get(1)!.values()];
        const h = (await fx.get("/exams/1/histogram?bins=4")).body as {
          exam: number;
          count: number;
          bins: { from: number; to: number; count: number }[];
        };
        assert.equal(h.exam, 1);
        assert.equal(h.count, scores.length);
        assert.deepEqual(h.bins.map((b) => [b.from, b.to]), [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [
          0.75,
          1,
        ]]);
        const expected = [0, 0, 0, 0];
        for (const s of scores) expected[Math.min(Math.floor(s * 4), 3)]++;
        assert.deepEqual(h.bins.map((b) => b.count), expected);
        assert.ok(scores.includes(1));
        const def = (await fx.get("/exams/1/histogram")).body as typeof h;
        assert.equal(def.bins.length, 10);
        assert.equal(def.bins.reduce((n, b) => n + b.count, 0), scores.length);
      },
    );

    await t.step(
      "GET /exams/{exam}/histogram rejects bins outside 1..100 with 400 and unknown exams with 404",
      async () => {
        for (const q of ["bins=0", "bins=101", "bins=2.5"]) {
          await assertProblem(request(`/exams/1/histogram?${q}`), 400);
        }
        await assertProblem(request("/exams/1.5/histogram"), 400);
        await assertProblem(request("/exams/42/histogram"), 404);
      },
    );

    await t.step(
      "GET /exams/{exam}/top returns the n best results, ties by studentId",
      async () => {
        const expected = [...byExam.get(1559)!]
          .sort((a, b) => b[1] - a[1] || compareUtf8(a[0], b[0]))
          .map(([studentId, score]) => ({ studentId, score }));
        const top = (await fx.get("/exams/1559/top?n=5")).body as {
          exam: number;
          count: number;
          top: { studentId: string; score: number }[];
        };
        assert.equal(top.count, expected.length);
        assert.deepEqual(top.top, expected.slice(0, 5));
        const def = (await fx.get("/exams/1559/top")).body as typeof top;
        assert.deepEqual(def.top, expected.slice(0, 10));
        // Exam 0 has equal scores: ties go by studentId.
        const ties = [...byExam.get(0)!]
          .sort((a, b) => b[1] - a[1] || compareUtf8(a[0], b[0]))
          .map(([studentId, score]) => ({ studentId, score }));
        assert.deepEqual(((await fx.get("/exams/0/top?n=100")).body as typeof top).top, ties);
        for (const q of ["n=0", "n=101", "n=ten"]) {
          await assertProblem(request(`/exams/1/top?${q}`), 400);
        }
        await assertProblem(request("/exams/42/top"), 404);
      },
    );

    await t.step(
      "GET /exams/{exam}/students/{studentId} gives the score, rank and percentile",
      async () => {
        const scores = [...byExam.get(1559)!.values()];
        for (const id of ["Student_0", "Student_5", "a"]) {
          const mine = byExam.get(1559)!.get(id)!;
          const { status, body } = await fx.get(`/exams/1559/students/${seg(id)}`);
          assert.equal(status, 200);
          assert.deepEqual(body, {
            exam: 1559,
            studentId: id,
            score: mine,
            rank: 1 + scores.filter((s) => s > mine).length,
            count: scores.length,
            percentile: Math.round(
              10000 * scores.filter((s) => s <= mine).length / scores.length,
            ) /
              100,
          });
        }
      },
    );

    await t.step(
      "GET /exams/{exam}/students/{studentId} answers 404 without a result and 400 for bad input",
      async () => {
        await assertProblem(request("/exams/1559/students/nobody"), 404);
        await assertProblem(request("/exams/42/students/a"), 404);
        await assertProblem(request(`/exams/100/students/a`), 404);
        await assertProblem(request("/exams/-3/students/a"), 400);
        await assertProblem(request(`/exams/1/students/${"z".repeat(129)}`), 400);
      },
    );
  });
}
