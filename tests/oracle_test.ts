import assert from "node:assert/strict";
import type { Service } from "./_service.ts";
import { type ExpectedExam, wholePage } from "./oracle.ts";

Deno.test("the oracle's wholePage() follows next until the last page of results", async () => {
  const results = Array.from({ length: 5 }, (_, i) => ({ studentId: `s${i}`, score: i / 10 }));
  const asked: string[] = [];
  const service = {
    json(path: string) {
      asked.push(path);
      const url = new URL(path, "http://x");
      const after = url.searchParams.get("after");
      const from = after === null ? 0 : results.findIndex((r) => r.studentId === after) + 1;
      const page = results.slice(from, from + 2);
      const next = from + 2 < results.length ? page.at(-1)!.studentId : null;
      return Promise.resolve({ exam: 1, count: 5, average: 0.2, results: page, next });
    },
  } as unknown as Service;
  const got = await wholePage<ExpectedExam>(service, "/exams/1", 2);
  assert.deepEqual(got.results, results);
  assert.deepEqual(asked, [
    "/exams/1?limit=2",
    "/exams/1?limit=2&after=s1",
    "/exams/1?limit=2&after=s3",
  ]);
});
