// The oracle: what the service must have stored after a stream of events (DESIGN.md,
// semantics rule 1), computed the simplest way there is.
import assert from "node:assert/strict";
import type { Service } from "./_service.ts";

/** One accepted score event, in stream order. */
export interface OracleEvent {
  exam: number;
  studentId: string;
  score: number;
}

/** A student as `GET /students/{studentId}` shows it, with all results on one page. */
export interface ExpectedStudent {
  studentId: string;
  count: number;
  average: number;
  results: { exam: number; score: number }[];
}

/** An exam as `GET /exams/{exam}` shows it, with all results on one page. */
export interface ExpectedExam {
  exam: number;
  count: number;
  average: number;
  results: { studentId: string; score: number }[];
}

/**
 * The state the API must show. Both maps iterate in the API's list order: students by
 * the UTF-8 bytes of their id, exams by number. Averages are the plain mean of the
 * final results, summed in list order, so compare them with a tolerance.
 */
export interface ExpectedState {
  students: Map<string, ExpectedStudent>;
  exams: Map<number, ExpectedExam>;
  /** Stored results: distinct (studentId, exam) pairs. */
  results: number;
}

/** The stored results after the events: studentId -> exam -> score, the last one winning. */
export function finalScores(events: Iterable<OracleEvent>): Map<string, Map<number, number>> {
  const latest = new Map<string, Map<number, number>>();
  for (const { studentId, exam, score } of events) {
    let byExam = latest.get(studentId);
    if (!byExam) latest.set(studentId, byExam = new Map());
    byExam.set(exam, score);
  }
  return latest;
}

/** Replays the events with last-write-wins per (studentId, exam). */
export function expectedState(events: Iterable<OracleEvent>): ExpectedState {
  const latest = finalScores(events);
  const students = new Map<string, ExpectedStudent>();
  const examResults = new Map<number, { studentId: string; score: number }[]>();
  let results = 0;
  for (const studentId of [...latest.keys()].sort(compareUtf8)) {
    const byExam = latest.get(studentId)!;
    const studentResults = [...byExam].sort(([a], [b]) => a - b).map(([exam, score]) => {
      // Students are visited in id order, so each exam's list comes out in id order too.
      let list = examResults.get(exam);
      if (!list) examResults.set(exam, list = []);
      list.push({ studentId, score });
      return { exam, score };
    });
    students.set(studentId, { studentId, ...summary(studentResults), results: studentResults });
    results += studentResults.length;
  }

  const exams = new Map<number, ExpectedExam>();
  for (const exam of [...examResults.keys()].sort((a, b) => a - b)) {
    const list = examResults.get(exam)!;
    exams.set(exam, { exam, ...summary(list), results: list });
  }
  return { students, exams, results };
}

/** Orders strings by their UTF-8 bytes, as Postgres collation "C" does. */
export function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < x.length && i < y.length; i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

const utf8 = new TextEncoder();

function summary(results: { score: number }[]): { count: number; average: number } {
  let sum = 0;
  for (const { score } of results) sum += score;
  return { count: results.length, average: sum / results.length };
}

/** Whether two averages agree up to the rounding of summing in another order. */
export function isClose(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-12;
}

/** Asserts that two averages agree up to the rounding of summing in another order. */
export function assertClose(actual: number, expected: number, what: string) {
  assert.ok(isClose(actual, expected), `${what}: ${actual} != ${expected}`);
}

/** Every item of a paginated list (`limit`/`after`/`next`) of the API. */
export async function allPages<T>(service: Service, path: string, key: string): Promise<T[]> {
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

/**
 * A student's or an exam's page with all its results, following `next` from page
 * to page: an exam with more results than one page holds is compared whole.
 */
export async function wholePage<T extends { results: unknown[]; next?: string | null }>(
  service: Service,
  path: string,
  limit = 10_000,
): Promise<T> {
  const first = await service.json<T>(`${path}?limit=${limit}`);
  for (let page = first; page.next != null;) {
    page = await service.json<T>(`${path}?limit=${limit}&after=${encodeURIComponent(page.next)}`);
    first.results.push(...page.results);
  }
  return first;
}

/**
 * Asserts through the API that the service holds exactly the oracle's state: the
 * totals of /stats, every exam's results, count and average, every student's count
 * and average, and the full results of every `studentSample`-th student. Returns
 * how long that took, in milliseconds.
 */
export async function assertMatchesOracle(
  service: Service,
  expected: ExpectedState,
  { studentSample = 101 }: { studentSample?: number } = {},
): Promise<number> {
  const start = performance.now();
  const stats = await service.stats();
  assert.equal(stats.results, expected.results, "stored results");
  assert.equal(stats.students, expected.students.size, "students");
  assert.equal(stats.exams, expected.exams.size, "exams");

  type Summary = { count: number; average: number };
  const exams = await allPages<{ exam: number } & Summary>(service, "/exams", "exams");
  assert.deepEqual(exams.map((e) => e.exam), [...expected.exams.keys()]);
  for (const exam of exams) {
    const want = expected.exams.get(exam.exam)!;
    assert.equal(exam.count, want.count, `exam ${exam.exam} count`);
    assertClose(exam.average, want.average, `exam ${exam.exam} average`);
    const got = await wholePage<ExpectedExam>(service, `/exams/${exam.exam}`);
    assert.deepEqual(got.results, want.results, `exam ${exam.exam} results`);
    assert.equal(got.count, want.count, `exam ${exam.exam} count`);
    assertClose(got.average, want.average, `exam ${exam.exam} average`);
  }

  const students = await allPages<{ studentId: string } & Summary>(
    service,
    "/students",
    "students",
  );
  assert.deepEqual(students.map((s) => s.studentId), [...expected.students.keys()]);
  for (const student of students) {
    const want = expected.students.get(student.studentId)!;
    assert.equal(student.count, want.count, `${student.studentId} count`);
    assertClose(student.average, want.average, `${student.studentId} average`);
  }
  const sample = [...expected.students.values()].filter((_, i) => i % studentSample === 0);
  for (const want of sample) {
    const got = await wholePage<ExpectedStudent>(
      service,
      `/students/${encodeURIComponent(want.studentId)}`,
    );
    assert.deepEqual(got.results, want.results, want.studentId);
    assertClose(got.average, want.average, `${want.studentId} average`);
  }
  return performance.now() - start;
}
