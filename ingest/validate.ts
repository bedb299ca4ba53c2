import {
  CONTROL_CHARACTER,
  INVISIBLE_CHARACTER,
  isTooLongStudentId,
  MAX_EXAM,
  MAX_STUDENT_ID_CHARS,
  type Result,
} from "../db/mod.ts";

/** Why an event was quarantined: a stable code, and a message for people. */
export interface Rejection {
  reason:
    | "invalid_utf8"
    | "invalid_json"
    | "not_an_object"
    | "invalid_exam"
    | "invalid_student_id"
    | "invalid_score";
  message: string;
}

/** The outcome of validating one event's data. */
export type Validated = { ok: true; score: Result } | { ok: false; rejection: Rejection };

// The relaxed parse is for hand-written events, far shorter than this.
const MAX_RELAXED_CHARS = 16 * 1024;
const EDGE_SPACE = /^\s|\s$/;

/**
 * Parses and validates the data of a `score` event (DESIGN.md rule 4). Data
 * whose bytes were not UTF-8 (see `Utf8DecoderStream`) is refused: replaced
 * bytes would merge different students. Strict JSON first, then a relaxed parse
 * that allows exactly the brief's two liberties, so that its own example
 * `{"exam": 3, "studentId": "foo", score: .991}` is accepted: unquoted keys
 * (`[A-Za-z_$][A-Za-z0-9_$]*`) and a number without the 0 before its point.
 * Nothing else (no hex, NaN, Infinity, single quotes, comments or trailing
 * commas). Data longer than 16 KiB gets the strict parse only. A studentId is
 * taken as it comes, never normalized, and refused when it has a control
 * character, a bidirectional control, an invisible space (see INVISIBLE_CHARACTER), or
 * white space at either end (so an id of white space only too).
 */
export function validateScore(data: string): Validated {
  if (!data.isWellFormed()) {
    return reject("invalid_utf8", "Cannot accept the data: it was not valid UTF-8");
  }
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
      value = JSON.parse(strictFromRelaxed(data));
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
  if (isTooLongStudentId(id)) return `longer than ${MAX_STUDENT_ID_CHARS} characters`;
  if (CONTROL_CHARACTER.test(id)) return "contains a control character";
  if (INVISIBLE_CHARACTER.test(id)) return "contains a bidirectional control or an invisible space";
  if (EDGE_SPACE.test(id)) return "begins or ends with white space";
  return undefined;
}

/** The relaxed JSON as strict JSON: unquoted keys quoted, a point without its 0 given one. */
function strictFromRelaxed(data: string): string {
  let out = "";
  let from = 0;
  // The last character outside strings and white space: a key follows "{" or ",".
  let last = "";
  for (let i = 0; i < data.length; i++) {
    const c = data.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < data.length && data.charCodeAt(i) !== QUOTE; i++) {
        if (data.charCodeAt(i) === BACKSLASH) i++;
      }
      last = '"';
    } else if (c === POINT && !isDigit(data.charCodeAt(i - 1)) && isDigit(data.charCodeAt(i + 1))) {
      out += data.slice(from, i) + "0";
      from = i;
      last = ".";
    } else if (isIdentifierStart(c)) {
      let end = i + 1;
      while (end < data.length && isIdentifierPart(data.charCodeAt(end))) end++;
      let next = end;
      while (next < data.length && isSpace(data.charCodeAt(next))) next++;
      if ((last === "{" || last === ",") && data[next] === ":") {
        out += `${data.slice(from, i)}"${data.slice(i, end)}"`;
        from = end;
      }
      last = data[end - 1];
      i = end - 1;
    } else if (!isSpace(c)) {
      last = data[i];
    }
  }
  return out + data.slice(from);
}

const QUOTE = 34;
const BACKSLASH = 92;
const POINT = 46;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isIdentifierStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36;
}

function isIdentifierPart(c: number): boolean {
  return isIdentifierStart(c) || isDigit(c);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

function reject(reason: Rejection["reason"], message: string): Validated {
  return { ok: false, rejection: { reason, message } };
}

function describe(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
