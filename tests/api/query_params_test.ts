import assert from "node:assert/strict";
import { createApi, createChangeFeed, createReadCache } from "../../api/mod.ts";
import { createQueries, isMigrated, type Queries } from "../../db/mod.ts";
import { databaseKinds } from "../_db.ts";
import { behindReadCache, createApiFixture } from "./_fixture.ts";

/** One valid request of every route, without a query or with the one it needs. */
const ROUTES = [
  "/students",
  "/students/a",
  "/students/a/trend",
  "/exams",
  "/exams/1559",
  "/exams/1559/histogram",
  "/exams/1559/top",
  "/exams/1559/students/Student_0",
  "/quarantine",
  "/results",
  "/stats",
  "/healthz",
  "/readyz",
  "/metrics",
  "/openapi.json",
  "/docs",
  "/docs/init.js",
];

const PAGED = new Set([
  "/students",
  "/students/a",
  "/exams",
  "/exams/1559",
]);

for (const kind of databaseKinds) {
  Deno.test(`[${kind}] every route answers an unknown query parameter with a 400 that names it`, async () => {
    await using fx = await createApiFixture(kind);
    for (const path of ROUTES) {
      const ok = await fx.app.request(path);
      await ok.body?.cancel();
      assert.equal(ok.status, 200, path);
      for (const query of ["search=Hai", "x=0.123", "limit=1&search=Hai"]) {
        if (query.startsWith("limit") && !PAGED.has(path)) continue;
        const url = `${path}?${query}`;
        const res = await fx.app.request(url);
        assert.equal(res.status, 400, url);
        assert.equal(res.headers.get("content-type"), "application/problem+json", url);
        const body = await res.json();
        assert.match(body.detail, /Unknown query parameter "(search|x)"/, url);
      }
    }
  });

  Deno.test(`[${kind}] spellings of the same page share one cached answer`, async () => {
    await using fx = await createApiFixture(kind);
    const inner = createQueries(fx.database.db);
    const reads: string[] = [];
    const queries = {
      ...inner,
      exam: (...args: Parameters<Queries["exam"]>) => {
        reads.push("exam");
        return inner.exam(...args);
      },
      student: (...args: Parameters<Queries["student"]>) => {
        reads.push("student");
        return inner.student(...args);
      },
    };
    const readCache = createReadCache({ changes: createChangeFeed() });
    const app = createApi({ queries, ready: () => isMigrated(fx.database.db), readCache });
    const request = behindReadCache(readCache, app);
    for (
      const path of [
        "/exams/1559",
        "/exams/1559?limit=1000",
        "/exams/01559?limit=01000",
        "/exams/1559?limit=5&after=Student_1",
        "/exams/1559?after=Student_1&limit=5",
        "/exams/1559?after=Student%5F1&limit=005",
        "/students/a",
        "/students/a?limit=1000",
        "/students/%61?limit=1000",
      ]
    ) {
      // The router answers some, the cached answers in front of it others.
      for (const headers of [{}, { "Accept-Encoding": "gzip" }] as Record<string, string>[]) {
        const res = await request(path, { headers });
        assert.equal(res.status, 200, path);
        await res.body?.cancel();
      }
    }
    assert.deepEqual(reads, ["exam", "exam", "student"]);
  });
}
