import type { ScoreColumns } from "../db/mod.ts";
import type { Batch } from "./protocol.ts";

/**
 * Merges batches (in the order given) into one row per (studentId, exam), the
 * later event winning, as DESIGN.md rule 1 says and applyScores() requires.
 */
export function coalesce(batches: readonly Batch[]): ScoreColumns {
  // One map of studentIds per exam rather than one of "studentId + exam" keys:
  // no key string is built and hashed per event, and a feed sends an exam's
  // events together, so the exam's map is usually the one of the event before.
  const byExam = new Map<number, Map<string, number>>();
  let lastExam = NaN;
  let rowOf = new Map<string, number>();
  const names: string[] = [];
  const exams: number[] = [];
  const scores: number[] = [];
  for (const batch of batches) {
    for (let i = 0; i < batch.names.length; i++) {
      const exam = batch.exams[i];
      if (exam !== lastExam) {
        let map = byExam.get(exam);
        if (map === undefined) byExam.set(exam, map = new Map());
        rowOf = map;
        lastExam = exam;
      }
      const name = batch.names[i];
      const at = rowOf.get(name);
      if (at === undefined) {
        rowOf.set(name, names.length);
        names.push(name);
        exams.push(exam);
        scores.push(batch.scores[i]);
      } else {
        scores[at] = batch.scores[i];
      }
    }
  }
  return { names, exams, scores };
}
