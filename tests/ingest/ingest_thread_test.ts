import assert from "node:assert/strict";
import { scoreEventAt } from "../../ingest/demo_feed.ts";
import { startIngestThread } from "../../ingest/ingest_thread.ts";
import type { Changed } from "../../ingest/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";
import { demoFeed, serveFeed } from "../_feed_server.ts";
import { until } from "../_wait.ts";
import { finalScores } from "../oracle.ts";

const TOTAL = 5_000;

for (const kind of databaseKinds) {
  Deno.test(`the ingest worker stores the feed, reports stats, changes and logs, and stops on abort (${kind})`, async () => {
    await using feed = serveFeed(demoFeed({ seed: 3, rate: 0, total: TOTAL }));
    await using database = await createTestDatabase(kind);
    const changed: Changed[] = [];
    const logs: Record<string, unknown>[] = [];
    const ingest = startIngestThread({
      scoresUrl: feed.url,
      feedId: "test",
      demoRate: 0,
      maxEventBytes: 1 << 20,
      writers: 2,
      databaseUrl: database.url,
      poolMode: "session",
      instanceId: "test-instance",
    }, { onChanged: (c) => changed.push(c), log: (r) => logs.push(r) });
    assert.equal(ingest.stats.snapshot().state, "starting", "before the first snapshot");
    const stop = new AbortController();
    const running = ingest.run(stop.signal);
    await until(
      () => `every event applied; last: ${JSON.stringify(ingest.stats.snapshot())}`,
      () => ingest.stats.snapshot().applied === TOTAL && ingest.stats.snapshot().lastEventId,
      60_000,
    );
    stop.abort();
    await running;

    const expected = finalScores(Array.from({ length: TOTAL }, (_, i) => scoreEventAt(3, i)));
    const rows = await database.db.selectFrom("results")
      .innerJoin("students", "students.id", "results.student")
      .select(["students.name", "results.exam", "results.score"])
      .execute();
    const stored = new Map<string, Map<number, number>>();
    for (const { name, exam, score } of rows) {
      if (!stored.has(name)) stored.set(name, new Map());
      stored.get(name)!.set(exam, score);
    }
    assert.deepEqual(stored, expected, "the stored results are the feed's final scores");
    const reported = new Set(changed.flatMap((c) => c.students));
    assert.deepEqual(reported, new Set(expected.keys()), "every student's change was reported");
    assert.ok(logs.some((r) => r.msg === "feed open"), "the worker's log records reach the host");
    assert.equal(ingest.stats.snapshot().lastEventId, String(TOTAL - 1));
  });
}

Deno.test("the ingest worker's failure rejects run with its error", async () => {
  const ingest = startIngestThread({
    scoresUrl: "http://127.0.0.1:9/scores",
    feedId: "test",
    demoRate: 0,
    maxEventBytes: 1 << 20,
    writers: 1,
    // Not a URL: the worker's first connection throws.
    databaseUrl: "postgres://%zz",
    poolMode: "session",
    instanceId: "test-instance",
  }, { log: () => {} });
  await assert.rejects(ingest.run(new AbortController().signal), /URL|%zz|malformed/i);
});
