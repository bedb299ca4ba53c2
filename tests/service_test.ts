import assert from "node:assert/strict";
import { scoreEventAt } from "../ingest/demo_feed.ts";
import { createTestDatabase, databaseKinds } from "./_db.ts";
import { assertMatchesOracle, expectedState } from "./oracle.ts";
import { demoFeed, serveFeed } from "./_feed_server.ts";
import { startService } from "./_service.ts";

const TOTAL = 20_000;

for (const kind of databaseKinds) {
  Deno.test(`service stores ${TOTAL} events with regrades exactly, read back through the API (${kind})`, async () => {
    const seed = 1 + Math.floor(Math.random() * 1e9);
    await using feed = serveFeed(demoFeed({ seed, rate: 5_000, total: TOTAL }));
    await using database = await createTestDatabase(kind);
    // The embedded kind runs the service on its own PGlite under DATA_DIR.
    const dataDir = `./data/test-${crypto.randomUUID()}`;
    const env: Record<string, string> = kind === "server"
      ? { SCORES_URL: feed.url, DATABASE_URL: database.url, WRITERS: "3" }
      : { SCORES_URL: feed.url, DATA_DIR: dataDir, DATABASE_URL: "", WRITERS: "3" };
    const service = await startService(env);
    try {
      const expected = expectedState(
        Array.from({ length: TOTAL }, (_, i) => scoreEventAt(seed, i)),
      );
      // /stats may reuse its counts for a moment, so wait for them too.
      const stats = await service.waitFor(
        (s) => s.ingest.lastEventId === String(TOTAL - 1) && s.results === expected.results,
        120_000,
      );
      assert.equal(stats.ingest.applied, TOTAL);
      assert.ok(expected.results < TOTAL, "the feed sent regrades");
      await assertMatchesOracle(service, expected, { studentSample: 97 });
      assert.equal((await service.stop()).code, 0, "a graceful shutdown exits 0");
    } finally {
      await service.stop("SIGKILL");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  });
}
