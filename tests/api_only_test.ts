import assert from "node:assert/strict";
import { applyScores } from "../db/mod.ts";
import { createTestDatabase, databaseKinds } from "./_db.ts";
import { type Service, startService } from "./_service.ts";
import { until } from "./_wait.ts";
import { subscribe } from "./_events_client.ts";

/** Resolves once the process answers /readyz with 200 (it has checked the migrations). */
async function ready(service: Service) {
  await until("the process to be ready", async () => {
    const response = await fetch(`${service.url}/readyz`);
    await response.body?.cancel();
    return response.ok || undefined;
  });
}

/** Student and exam pages answered so far, by what it took (from /metrics). */
async function answered(service: Service): Promise<Record<string, number>> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (
    const [, source, n] of text.matchAll(
      /^scorestream_http_page_answers_total\{source="(\w+)"\} (\d+)$/gm,
    )
  ) {
    counts[source] = Number(n);
  }
  return counts;
}

// An API-only process (ROLE=api) hears of commits through LISTEN/NOTIFY, which
// the embedded database does not deliver; there it checks every cached body.
if (databaseKinds.includes("server")) {
  Deno.test("an API-only process answers repeated reads from memory and sees every later commit (server)", async () => {
    await using t = await createTestDatabase("server");
    await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
    const api = await startService({ ROLE: "api", DATABASE_URL: t.url });
    try {
      // Pages answer 503 until the process has checked the migrations.
      await ready(api);
      type Page = { count: number; average: number; results: { exam: number; score: number }[] };
      // The process listens a moment after it serves: until then (and once
      // more when it starts listening) pages are read from Postgres.
      const listening = Date.now() + 10_000;
      let first = await answered(api);
      do {
        assert.equal((await api.json<Page>("/students/a")).count, 1);
        const now = await answered(api);
        if (now.memory > (first.memory ?? 0)) break;
        first = now;
      } while (Date.now() < listening);

      const before = await answered(api);
      for (let i = 0; i < 200; i++) assert.equal((await api.json<Page>("/students/a")).count, 1);
      const after = await answered(api);
      assert.equal(after.memory - before.memory, 200);
      assert.equal(after.version - before.version, 0);
      assert.equal(after.read - before.read, 0);

      await applyScores(t.db, 1, { names: ["a"], exams: [2], scores: [0.25] }, []);
      const deadline = Date.now() + 2_000;
      let page = await api.json<Page>("/students/a");
      while (page.count !== 2 && Date.now() < deadline) page = await api.json<Page>("/students/a");
      assert.deepEqual(page.results, [{ exam: 1, score: 0.5 }, { exam: 2, score: 0.25 }]);
      assert.equal(page.average, 0.375);

      // A regrade of a cached exam is seen too.
      assert.equal((await api.json<{ count: number }>("/exams/2")).count, 1);
      await applyScores(t.db, 0, { names: ["b"], exams: [2], scores: [1] }, []);
      let exam = await api.json<{ count: number }>("/exams/2");
      while (exam.count !== 2 && Date.now() < deadline + 2_000) {
        exam = await api.json<{ count: number }>("/exams/2");
      }
      assert.equal(exam.count, 2);
    } finally {
      await api.stop();
    }
  });
}

if (databaseKinds.includes("server")) {
  Deno.test("an API-only process streams on GET /events what another process commits (server)", async () => {
    await using t = await createTestDatabase("server");
    await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
    const api = await startService({ ROLE: "api", DATABASE_URL: t.url });
    try {
      await ready(api);
      const stream = await subscribe(`${api.url}/events?snapshot=true`);
      try {
        await until(
          "the snapshot",
          () => stream.events.some((e) => e.event === "live") || undefined,
        );
        await applyScores(t.db, 0, { names: ["a", "b"], exams: [1, 1], scores: [0.75, 0.25] }, []);
        await until("the commit's changes", () => stream.events.length === 4 || undefined);
        assert.deepEqual(stream.events.map((e) => [e.event, e.data]), [
          ["result", '{"studentId":"a","exam":1,"score":0.5}'],
          ["live", "{}"],
          ["result", '{"studentId":"a","exam":1,"score":0.75}'],
          ["result", '{"studentId":"b","exam":1,"score":0.25}'],
        ]);
      } finally {
        stream.close();
        await stream.ended;
      }
    } finally {
      await api.stop("SIGKILL");
    }
  });
}
