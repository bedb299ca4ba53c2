import type { ScoreColumns } from "../db/mod.ts";
import type { Batch } from "./protocol.ts";

/**
 * Merges batches (in the order given) into one row per (studentId, exam), the
 * later event winning, as DESIGN.md rule 1 says and `apply_scores` requires.
 */
export function coalesce(batches: readonly Batch[]): ScoreColumns {
  const latest = new Map<string, number>();
  const names: string[] = [];
  const exams: number[] = [];
  const scores: number[] = [];
  for (const batch of batches) {
    for (let i = 0; i < batch.names.length; i++) {
      // studentIds never hold control characters, so NUL separates unambiguously.
      const key = `${batch.names[i]}\0${batch.exams[i]}`;
      const at = latest.get(key);
      if (at === undefined) {
        latest.set(key, names.length);
        names.push(batch.names[i]);
        exams.push(batch.exams[i]);
        scores.push(batch.scores[i]);
      } else {
        scores[at] = batch.scores[i];
      }
    }
  }
  return { names, exams, scores };
}
