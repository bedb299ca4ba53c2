// An API-only instance on a streaming hot standby of the primary that another
// instance ingests into: it starts, becomes ready, serves exactly what the primary
// holds and never writes. How closely the standby follows is printed, not asserted.
import assert from "node:assert/strict";
import postgres from "postgres";
import { createTestDatabase } from "./_db.ts";
import { demoEvents } from "./_faults.ts";
import { demoFeed, serveFeed } from "./_feed_server.ts";
import { startHotStandby } from "./_hot_standby.ts";
import { type Service, startService } from "./_service.ts";
import { until } from "./_wait.ts";
import { resultCount, subscribe, type Subscription } from "./_events_client.ts";
import { assertMatchesOracle, expectedState, finalScores } from "./oracle.ts";

const server = Deno.env.get("DATABASE_URL") !== undefined;

function p99(samples: number[]): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
}

Deno.test({
  name: "an API-only instance on a hot standby is ready, serves the exact state and never writes",
  ignore: !server,
  async fn() {
    const rate = 2_000;
    const total = 10 * rate;
    const seed = 1 + Math.floor(Math.random() * 1e9);
    const feed = serveFeed(demoFeed({ seed, rate, total, regradeRate: 0.1, retryMs: 100 }));
    await using database = await createTestDatabase("server");
    const began = performance.now();
    await using standby = await startHotStandby(database.url);
    const standbyMs = performance.now() - began;
    const services: Service[] = [];
    const subscriptions: Subscription[] = [];
    const replica = postgres(standby.url, { max: 1, onnotice: () => {} });
    try {
      const ingesting = await startService({ SCORES_URL: feed.url, DATABASE_URL: database.url });
      services.push(ingesting);
      const api = await startService({ ROLE: "api", DATABASE_URL: standby.url });
      services.push(api);
      await until("the replica instance to be ready", async () => {
        const response = await fetch(`${api.url}/readyz`);
        await response.body?.cancel();
        return response.ok;
      }, 60_000);
      assert.equal((await api.stats()).ingest.role, "api");
      // The change stream on the standby: from the start, and later with a snapshot.
      const fromStart = await subscribe(`${api.url}/events`);
      subscriptions.push(fromStart);

      // How far the standby follows: the primary's WAL position taken, then the time
      // until the standby has replayed up to it; one probe at a time while ingesting.
      const primary = postgres(database.url, { max: 1, onnotice: () => {} });
      const lagMs: number[] = [];
      const expected = expectedState(demoEvents(seed, total, { regradeRate: 0.1 }));
      let done = false;
      const sampling = (async () => {
        while (!done) {
          const [{ lsn }] = await primary<{ lsn: string }[]>`SELECT pg_current_wal_lsn() AS lsn`;
          const from = performance.now();
          while (!done) {
            const [{ replayed }] = await replica<{ replayed: boolean }[]>`
              SELECT pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn AS replayed`;
            if (replayed) {
              lagMs.push(performance.now() - from);
              break;
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      await ingesting.waitFor((s) => s.ingest.applied >= total / 2, 120_000);
      const snapshot = await subscribe(`${api.url}/events?snapshot=true`);
      subscriptions.push(snapshot);
      const stored = await ingesting.waitFor(
        (s) => s.ingest.lastEventId === String(total - 1) && s.results === expected.results,
        120_000,
      );
      done = true;
      await sampling;
      await primary.end();

      const verifyMs = await assertMatchesOracle(api, expected);
      const final = finalScores(demoEvents(seed, total, { regradeRate: 0.1 }));
      for (const [name, subscription] of [["from the start", fromStart], ["snapshot", snapshot]]) {
        await until(
          `the standby's ${name} stream to hold every result`,
          () => resultCount((subscription as Subscription).state) === expected.results || undefined,
          60_000,
        );
        assert.deepEqual(
          (subscription as Subscription).state,
          final,
          `the standby's ${name} stream`,
        );
      }
      const refused = api.output().split("\n").filter((line) =>
        /read-only|25006|"level":"error"/.test(line) && !line.includes(`"msg":"request"`)
      );
      assert.deepEqual(refused, [], "the replica never writes");
      const [{ recovery }] = await replica<{ recovery: boolean }[]>`
        SELECT pg_is_in_recovery() AS recovery`;
      assert.equal(recovery, true, "still a standby");
      console.log(JSON.stringify({
        events: total,
        rate,
        ingestLagP99Ms: stored.ingest.lagMs,
        standbyReplayLagP99Ms: p99(lagMs),
        standbyReplayLagSamples: lagMs.length,
        standbyCreatedMs: Math.round(standbyMs),
        verifyMs: Math.round(verifyMs),
      }));
    } finally {
      for (const subscription of subscriptions) subscription.close();
      await Promise.all(subscriptions.map((s) => s.ended));
      for (const service of services) await service.stop("SIGKILL");
      await replica.end();
      await feed.close();
    }
  },
});
