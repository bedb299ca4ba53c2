/** One stored result. */
export interface Result {
  studentId: string;
  exam: number;
  score: number;
}
