import JSON5 from "json5";

/** One exam result as the feed sends it. */
export interface Score {
  exam: number;
  studentId: string;
  score: number;
}

/** Why an event was quarantined: a stable code, and a message for people. */
export interface Rejection {
  reason:
    | "invalid_json"
    | "not_an_object"
    | "invalid_exam"
    | "invalid_student_id"
    | "invalid_score";
  message: string;
}

/** The outcome of validating one event's data. */
export type Validated = { ok: true; score: Score } | { ok: false; rejection: Rejection };

const MAX_EXAM = 2147483647;
// The relaxed parse is for hand-written events, far shorter than this. It builds
// hundreds of bytes per nesting level, so 1 MiB of "[" would cost a few hundred MiB.
const MAX_RELAXED_CHARS = 16 * 1024;
const MAX_STUDENT_ID_CHARS = 128;
// C0 and C1 control characters, and DEL: matching them is the point.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Parses and validates the data of a `score` event (DESIGN.md rule 4): strict
 * JSON first, then JSON5 so that the brief's own example
 * `{"exam": 3, "studentId": "foo", score: .991}` is accepted. Data longer than
 * 16 KiB gets the strict parse only, which keeps memory bounded on hostile input.
 */
export function validateScore(data: string): Validated {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (error) {
    if (data.length > MAX_RELAXED_CHARS) {
      const detail = error instanceof Error ? error.message : String(error);
      return reject(
        "invalid_json",
        `Cannot parse the data as JSON: ${detail}; too long for the relaxed parse`,
      );
    }
    try {
      value = JSON5.parse(data);
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      return reject("invalid_json", `Cannot parse the data as JSON: ${detail}`);
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return reject("not_an_object", "Cannot accept the data: not a JSON object");
  }
  const { exam, studentId, score } = value as Record<string, unknown>;
  if (typeof exam !== "number" || !Number.isInteger(exam) || exam < 0 || exam > MAX_EXAM) {
    return reject(
      "invalid_exam",
      `Cannot accept exam ${describe(exam)}: not an integer in 0..${MAX_EXAM}`,
    );
  }
  const idProblem = studentIdProblem(studentId);
  if (idProblem) {
    return reject(
      "invalid_student_id",
      `Cannot accept studentId ${describe(studentId)}: ${idProblem}`,
    );
  }
  if (typeof score !== "number" || !(score >= 0 && score <= 1)) {
    return reject(
      "invalid_score",
      `Cannot accept score ${describe(score)}: not a number in [0, 1]`,
    );
  }
  return { ok: true, score: { exam, studentId: studentId as string, score } };
}

function studentIdProblem(id: unknown): string | undefined {
  if (typeof id !== "string") return "not a string";
  if (id.length === 0) return "empty";
  if (!id.isWellFormed()) return "not well-formed Unicode";
  // Code points, not UTF-16 units; only long strings need the slower count.
  if (id.length > MAX_STUDENT_ID_CHARS && [...id].length > MAX_STUDENT_ID_CHARS) {
    return `longer than ${MAX_STUDENT_ID_CHARS} characters`;
  }
  if (CONTROL.test(id)) return "contains a control character";
  return undefined;
}

function reject(reason: Rejection["reason"], message: string): Validated {
  return { ok: false, rejection: { reason, message } };
}

function describe(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
