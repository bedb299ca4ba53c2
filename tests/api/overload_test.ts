import assert from "node:assert/strict";
import postgres from "postgres";
import { createApi } from "../../api/mod.ts";
import { createDb, createQueries, isMigrated } from "../../db/mod.ts";
import { createTestDatabase } from "../_db.ts";
import { until } from "../_wait.ts";
import { applyEvents, seedEvents } from "./_fixture.ts";

// The embedded database runs one statement at a time for all its clients, so
// a read held by a lock holds every other: only a server can show the reads
// queueing while the rest goes on.
Deno.test({
  name: "[server] reads past the read gate's places are refused at once with 503 and " +
    "Retry-After, while /stats and /healthz answer",
  ignore: !Deno.env.get("DATABASE_URL"),
  async fn() {
    await using database = await createTestDatabase("server");
    await applyEvents(database.db, seedEvents());
    // As main.ts sizes it: the gate's places plus one for the counts.
    const reader = createDb({ url: database.url, max: 2 });
    const app = createApi({
      queries: createQueries(reader.db, { maxConcurrentReads: 1, maxQueuedReads: 0 }),
      ready: () => isMigrated(database.db),
    });
    // One connection holds the lock; the other watches (a transaction sees pg_stat_activity once).
    const locker = postgres(database.url, { max: 2, onnotice: () => {} });
    try {
      const locked = await locker.reserve();
      await locked`BEGIN`;
      await locked`LOCK TABLE results IN ACCESS EXCLUSIVE MODE`;
      const held = app.request("/students/a");
      await until("the read to wait for the lock", async () => {
        const [{ n }] = await locker<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`;
        return n === 1;
      });

      const refused = await app.request("/exams/1559");
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.equal(refused.headers.get("content-type"), "application/problem+json");
      assert.match((await refused.json()).detail, /Too many requests are reading the database/);

      const stats = await app.request("/stats");
      assert.equal(stats.status, 200);
      assert.equal((await stats.json()).students, new Set(seedEvents().map((e) => e[0])).size);
      const health = await app.request("/healthz");
      assert.equal(health.status, 200);
      await health.body?.cancel();

      await locked`COMMIT`;
      locked.release();
      const answered = await held;
      assert.equal(answered.status, 200);
      await answered.body?.cancel();
    } finally {
      await locker.end();
      await reader.close();
    }
  },
});
