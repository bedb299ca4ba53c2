import assert from "node:assert/strict";
import { coalesce } from "../../workers/coalesce.ts";
import type { Batch } from "../../workers/protocol.ts";

function batch(id: number, rows: [string, number, number][]): Batch {
  return {
    id,
    names: rows.map((r) => r[0]),
    chars: rows.reduce((n, r) => n + r[0].length, 0),
    exams: new Int32Array(rows.map((r) => r[1])),
    scores: new Float64Array(rows.map((r) => r[2])),
    quarantine: [],
  };
}

Deno.test("coalesce() keeps one row per student and exam, the later event winning", () => {
  const rows = coalesce([
    batch(1, [["a", 1, 0.1], ["b", 1, 0.2], ["a", 1, 0.3]]),
    batch(2, [["a", 2, 0.4], ["b", 1, 0.5]]),
  ]);
  assert.deepEqual(rows, { names: ["a", "b", "a"], exams: [1, 1, 2], scores: [0.3, 0.5, 0.4] });
});

Deno.test("coalesce() does not confuse ids that only differ around the separator", () => {
  const rows = coalesce([batch(1, [["a1", 2, 0.1], ["a", 12, 0.2]])]);
  assert.equal(rows.names.length, 2);
});
