// The oracle: what the service must have stored after a stream of events (DESIGN.md,
// semantics rule 1), computed the simplest way there is.

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

/** Replays the events with last-write-wins per (studentId, exam). */
export function expectedState(events: Iterable<OracleEvent>): ExpectedState {
  const latest = new Map<string, Map<number, number>>();
  for (const { studentId, exam, score } of events) {
    let byExam = latest.get(studentId);
    if (!byExam) latest.set(studentId, byExam = new Map());
    byExam.set(exam, score);
  }

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
