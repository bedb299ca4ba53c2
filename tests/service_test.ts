import assert from "node:assert/strict";
import { scoreEventAt } from "../ingest/demo_feed.ts";
import { createTestDatabase, databaseKinds } from "./_db.ts";
import { expectedState } from "./oracle.ts";
import { serveFeed, type Service, startService } from "./_service.ts";

const TOTAL = 20_000;

function close(actual: number, expected: number, what: string) {
  assert.ok(Math.abs(actual - expected) <= 1e-12, `${what}: ${actual} != ${expected}`);
}

async function pages<T>(service: Service, path: string, key: string): Promise<T[]> {
  const all: T[] = [];
  let after: string | null = null;
  do {
    const query: string = after === null ? "" : `&after=${encodeURIComponent(after)}`;
    const page: Record<string, unknown> = await service.json(`${path}?limit=1000${query}`);
    all.push(...page[key] as T[]);
    after = page.next as string | null;
  } while (after !== null);
  return all;
}

for (const kind of databaseKinds) {
  Deno.test(`service stores ${TOTAL} events with regrades exactly, read back through the API (${kind})`, async () => {
    const seed = 1 + Math.floor(Math.random() * 1e9);
    await using feed = serveFeed({ seed, rate: 5_000, total: TOTAL });
    await using database = await createTestDatabase(kind);
    // The embedded kind runs the service on its own PGlite under DATA_DIR.
    const dataDir = `./data/test-${crypto.randomUUID()}`;
    const env: Record<string, string> = kind === "server"
      ? { SCORES_URL: feed.url, DATABASE_URL: database.url, WRITERS: "3" }
      : { SCORES_URL: feed.url, DATA_DIR: dataDir, DATABASE_URL: "", WRITERS: "3" };
    const service = await startService(env);
    try {
      const expected = expectedState(
        Array.from({ length: TOTAL }, (_, i) => scoreEventAt(seed, i)),
      );
      // /stats may reuse its counts for a moment, so wait for them too.
      const stats = await service.waitFor(
        (s) => s.ingest.lastEventId === String(TOTAL - 1) && s.results === expected.results,
        120_000,
      );
      assert.equal(stats.ingest.applied, TOTAL);
      assert.equal(stats.results, expected.results);
      assert.equal(stats.students, expected.students.size);
      assert.equal(stats.exams, expected.exams.size);
      assert.ok(expected.results < TOTAL, "the feed sent regrades");

      const exams = await pages<{ exam: number; count: number; average: number }>(
        service,
        "/exams",
        "exams",
      );
      assert.deepEqual(exams.map((e) => e.exam), [...expected.exams.keys()].sort((a, b) => a - b));
      for (const exam of exams) {
        const want = expected.exams.get(exam.exam)!;
        assert.equal(exam.count, want.count);
        close(exam.average, want.average, `exam ${exam.exam} average`);
        const got = await service.json<typeof want>(`/exams/${exam.exam}?limit=10000`);
        assert.deepEqual(got.results, want.results, `exam ${exam.exam} results`);
        assert.equal(got.count, want.count);
        close(got.average, want.average, `exam ${exam.exam} average`);
      }

      const students = await pages<{ studentId: string; count: number; average: number }>(
        service,
        "/students",
        "students",
      );
      assert.deepEqual(students.map((s) => s.studentId), [...expected.students.keys()]);
      for (const student of students) {
        const want = expected.students.get(student.studentId)!;
        assert.equal(student.count, want.count, student.studentId);
        close(student.average, want.average, `${student.studentId} average`);
      }
      for (const want of [...expected.students.values()].filter((_, i) => i % 97 === 0)) {
        const got = await service.json<typeof want>(
          `/students/${encodeURIComponent(want.studentId)}`,
        );
        assert.deepEqual(got.results, want.results, want.studentId);
      }
      assert.equal((await service.stop()).code, 0, "a graceful shutdown exits 0");
    } finally {
      await service.stop("SIGKILL");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  });
}
