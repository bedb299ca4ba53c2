import assert from "node:assert/strict";
import { validateScore } from "../../ingest/validate.ts";

function reason(data: string) {
  const result = validateScore(data);
  return result.ok ? "ok" : result.rejection.reason;
}

Deno.test("validateScore() accepts a strict JSON score", () => {
  assert.deepEqual(validateScore('{"exam": 3, "studentId": "foo", "score": 0.991}'), {
    ok: true,
    score: { exam: 3, studentId: "foo", score: 0.991 },
  });
});

Deno.test("validateScore() accepts the brief's relaxed example with an unquoted key", () => {
  assert.deepEqual(validateScore('{"exam": 3, "studentId": "foo", score: .991}'), {
    ok: true,
    score: { exam: 3, studentId: "foo", score: 0.991 },
  });
});

Deno.test("validateScore() accepts the bounds of every field", () => {
  assert.equal(reason('{"exam": 0, "studentId": "a", "score": 0}'), "ok");
  assert.equal(reason(`{"exam": 2147483647, "studentId": "${"é".repeat(128)}", "score": 1}`), "ok");
  assert.equal(reason(`{"exam": 1, "studentId": "${"😀".repeat(128)}", "score": 1}`), "ok");
});

Deno.test("validateScore() rejects data that is not JSON", () => {
  assert.equal(reason("{exam: 3,"), "invalid_json");
  assert.equal(reason(""), "invalid_json");
  assert.equal(reason("[".repeat(100_000)), "invalid_json");
});

Deno.test("validateScore() tries the relaxed parse on short data only, whose memory it bounds", () => {
  const relaxed = (length: number) => {
    const text = '{exam: 3, studentId: "foo", score: .5}';
    return text.slice(0, -1) + " ".repeat(length - text.length) + "}";
  };
  assert.equal(reason(relaxed(16 * 1024)), "ok");
  assert.equal(reason(relaxed(16 * 1024 + 1)), "invalid_json");
  const deep = validateScore("[".repeat(1 << 20));
  assert.ok(!deep.ok && /too long for the relaxed parse/.test(deep.rejection.message));
});

Deno.test("validateScore() rejects JSON that is not an object", () => {
  for (const data of ["[1,2]", "null", "3", '"x"']) assert.equal(reason(data), "not_an_object");
});

Deno.test("validateScore() rejects a bad exam", () => {
  for (const exam of ["-1", "1.5", "2147483648", '"3"', "null", "1e400"]) {
    assert.equal(reason(`{"exam": ${exam}, "studentId": "a", "score": 0.5}`), "invalid_exam", exam);
  }
  assert.equal(reason('{"studentId": "a", "score": 0.5}'), "invalid_exam");
});

Deno.test("validateScore() rejects a bad studentId", () => {
  const bad = [
    '""',
    "3",
    "null",
    `"${"a".repeat(129)}"`,
    `"${"😀".repeat(129)}"`,
    '"a\\u0000b"',
    '"tab\\there"',
    '"del\\u007f"',
    '"c1\\u0085"',
    '"lone\\ud800"',
  ];
  for (const id of bad) {
    assert.equal(reason(`{"exam": 1, "studentId": ${id}, "score": 0.5}`), "invalid_student_id", id);
  }
});

Deno.test("validateScore() rejects a score above 1, below 0 or not finite", () => {
  for (const score of ["1.0000001", "-0.1", '"0.5"', "null", "true", "1e400"]) {
    assert.equal(reason(`{"exam": 1, "studentId": "a", score: ${score}}`), "invalid_score", score);
  }
});

Deno.test("validateScore() relaxes only unquoted keys and a leading point, nothing else of JSON5", () => {
  assert.equal(reason('{exam: 1, studentId: "a", score: .5}'), "ok");
  assert.equal(reason('{exam: 1, studentId: "key: {x, y: .5}", score: -.0}'), "ok");
  for (
    const data of [
      '{exam: 0x10, studentId: "a", score: 0.5}',
      '{exam: 1, studentId: "a", score: NaN}',
      '{exam: 1, studentId: "a", score: Infinity}',
      "{exam: 1, studentId: 'a', score: 0.5}",
      '{exam: 1, studentId: "a", score: 0.5,}',
      '{exam: 1, /* c */ studentId: "a", score: 0.5}',
      '{exam: +1, studentId: "a", score: 0.5}',
      '{exam: 1, studentId: "a", score: 5.}',
    ]
  ) {
    assert.equal(reason(data), "invalid_json", data);
  }
  const inString = validateScore('{"exam": 1, "studentId": "a.5", "score": 1}');
  assert.ok(inString.ok && inString.score.studentId === "a.5", "strings are left alone");
});

Deno.test("validateScore() refuses studentIds that look like another: bidi controls, invisible spaces, edge spaces", () => {
  for (
    const id of [
      " a",
      "a ",
      "   ",
      "\u00a0a",
      "a\u202eb",
      "a\u2066b\u2069",
      "a\u200eb",
      "a\u200bb",
      "a\u2060b",
      "a\ufeffb",
      "\u3000",
    ]
  ) {
    assert.equal(reason(`{"exam": 1, "studentId": "${id}", "score": 1}`), "invalid_student_id", id);
  }
  for (const id of ["Mary Ann", "👨\u200d👩\u200d👧", "می\u200cخواهم", "Zoë"]) {
    assert.equal(reason(`{"exam": 1, "studentId": "${id}", "score": 1}`), "ok", id);
  }
});

Deno.test("validateScore() refuses data whose bytes were not UTF-8", () => {
  assert.equal(
    reason('{"exam": 1, "studentId": "Jos\uDC80", "score": 1}'.replace("\\uDC80", "\uDC80")),
    "invalid_utf8",
  );
});

Deno.test("validateScore() explains a rejection in a message naming the value", () => {
  const result = validateScore('{"exam": "x", "studentId": "a", "score": 0.5}');
  assert.equal(result.ok, false);
  assert.match(
    !result.ok ? result.rejection.message : "",
    /^Cannot accept exam "x": not an integer/,
  );
});
