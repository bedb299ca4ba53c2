import assert from "node:assert/strict";
import { createApi, createChangeFeed, createReadCache } from "../../../api/mod.ts";
import { createQueries, isMigrated, type Queries } from "../../../db/mod.ts";
import { databaseKinds } from "../../_db.ts";
import { applyEvents, behindReadCache, createApiFixture } from "../_fixture.ts";

/** Queries that record each call and can run `during` between a read and its answer. */
function observedQueries(inner: Queries) {
  const calls: string[] = [];
  const hooks: { during?: () => Promise<void> } = {};
  const queries = Object.fromEntries(
    Object.entries(inner).map(([name, query]) => [
      name,
      async (...args: unknown[]) => {
        calls.push(name);
        const result = await (query as (...args: unknown[]) => Promise<unknown>)(...args);
        const during = hooks.during;
        hooks.during = undefined;
        await during?.();
        return result;
      },
    ]),
  ) as unknown as Queries;
  return { queries, calls, hooks };
}

async function fedApi(kind: (typeof databaseKinds)[number]) {
  const fixture = await createApiFixture(kind);
  const { queries, calls, hooks } = observedQueries(createQueries(fixture.database.db));
  const changes = createChangeFeed();
  const readCache = createReadCache({ changes });
  const app = createApi({ queries, ready: () => isMigrated(fixture.database.db), readCache });
  const request = behindReadCache(readCache, app);
  const get = async (path: string) => {
    const res = await request(path);
    assert.equal(res.status, 200, path);
    return { etag: res.headers.get("ETag"), body: await res.json() };
  };
  return { fixture, request, calls, hooks, changes, get };
}

for (const kind of databaseKinds) {
  Deno.test(`[${kind}] a change feed lets GET /students/{studentId} and /exams/{exam} answer from memory`, async () => {
    const { fixture, request, calls, get } = await fedApi(kind);
    await using _ = fixture;
    const student = await get("/students/a");
    const exam = await get("/exams/7");
    calls.length = 0;
    assert.deepEqual(await get("/students/a"), student);
    assert.deepEqual(await get("/exams/7"), exam);
    const notModified = await request("/students/a", {
      headers: { "If-None-Match": student.etag! },
    });
    assert.equal(notModified.status, 304);
    assert.deepEqual(calls, [], "no query for a cached page");
  });

  Deno.test(`[${kind}] a change feed makes the next GET /students/{studentId} and /exams/{exam} read a reported write`, async () => {
    const { fixture, changes, calls, get } = await fedApi(kind);
    await using _ = fixture;
    await get("/students/a");
    await get("/exams/1");
    await applyEvents(fixture.database.db, [["a", 1, 0.25]]);
    const unreported = await get("/students/a");
    assert.equal(unreported.body.results.find((r: { exam: number }) => r.exam === 1).score, 0.75);
    changes.publish({ students: ["a"], exams: [1] });
    calls.length = 0;
    const student = await get("/students/a");
    assert.equal(student.body.results.find((r: { exam: number }) => r.exam === 1).score, 0.25);
    const exam = await get("/exams/1");
    assert.equal(
      exam.body.results.find((r: { studentId: string }) => r.studentId === "a").score,
      0.25,
    );
    assert.ok(calls.includes("student") && calls.includes("exam"), calls.join());
  });

  Deno.test(`[${kind}] a change feed never keeps a page read before a write that committed during the read`, async () => {
    const { fixture, changes, hooks, get } = await fedApi(kind);
    await using _ = fixture;
    hooks.during = async () => {
      await applyEvents(fixture.database.db, [["a", 1, 0.25]]);
      changes.publish({ students: ["a"], exams: [1] });
    };
    const raced = await get("/students/a");
    assert.equal(raced.body.results.find((r: { exam: number }) => r.exam === 1).score, 0.75);
    const next = await get("/students/a");
    assert.equal(next.body.results.find((r: { exam: number }) => r.exam === 1).score, 0.25);
    assert.notEqual(next.etag, raced.etag);
  });

  Deno.test(`[${kind}] a page answered from memory without routing is the page the route answers`, async () => {
    const fixture = await createApiFixture(kind);
    await using _ = fixture;
    const { queries, calls } = observedQueries(createQueries(fixture.database.db));
    const logs: Record<string, unknown>[] = [];
    const readCache = createReadCache({ changes: createChangeFeed() });
    const app = createApi({
      queries,
      ready: () => isMigrated(fixture.database.db),
      readCache,
      log: (entry) => logs.push(entry),
    });
    const request = behindReadCache(readCache, app);
    const comparable = (res: Response) =>
      [...res.headers].filter(([name]) => name !== "x-request-id" && name !== "date");
    for (const path of ["/students/a", "/exams/7", "/students/a?limit=1", "/exams/7?after=b"]) {
      const routed = await request(path);
      const routedBody = await routed.text();
      calls.length = 0;
      logs.length = 0;
      const cached = await request(path, { headers: { "X-Request-Id": "client-id-1" } });
      assert.deepEqual(calls, [], `${path}: no query`);
      assert.equal(cached.status, 200);
      assert.equal(await cached.text(), routedBody, path);
      assert.deepEqual(comparable(cached), comparable(routed), path);
      assert.equal(cached.headers.get("x-request-id"), "client-id-1");
      assert.equal(logs.length, 1);
      assert.equal(logs[0].requestId, "client-id-1");
      assert.equal(logs[0].status, 200);
      assert.equal(logs[0].path, path.split("?")[0]);
      assert.equal(
        logs[0].route,
        path.startsWith("/students") ? "/students/{studentId}" : "/exams/{exam}",
      );

      const notModified = await request(path, {
        headers: { "If-None-Match": routed.headers.get("ETag")! },
      });
      assert.equal(notModified.status, 304);
      assert.equal(notModified.headers.get("ETag"), routed.headers.get("ETag"));
      assert.equal(await notModified.text(), "");
      assert.match(notModified.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
    }
    const metrics = await (await request("/metrics")).text();
    assert.match(metrics, /^scorestream_http_page_answers_total\{source="memory"\} 8$/m);
    assert.match(
      metrics,
      /^scorestream_http_request_duration_seconds_count\{method="GET",route="\/students\/\{studentId\}",status="200"\} 4$/m,
    );

    // Asked for compression, a HEAD, or a key never routed: the router answers.
    const accepting = await request("/students/a", { headers: { "Accept-Encoding": "gzip" } });
    assert.equal(accepting.status, 200);
    assert.equal((await accepting.json()).studentId, "a");
    assert.equal((await request("/students/a", { method: "HEAD" })).status, 200);
    assert.equal((await request("/students/zz-unknown")).status, 404);
  });
}
