import assert from "node:assert/strict";
import { IngestStats } from "../../ingest/stats.ts";

Deno.test("IngestStats lagMs is the p99 of the last minute's batch lags", () => {
  const stats = new IngestStats();
  assert.equal(stats.snapshot(0).lagMs, null);
  for (let ms = 1; ms <= 100; ms++) stats.lag(ms, 1_000);
  assert.equal(stats.snapshot(1_000).lagMs, 100);
  stats.lag(5, 30_000);
  assert.equal(stats.snapshot(61_500).lagMs, 5, "lags older than a minute are forgotten");
  assert.equal(stats.snapshot(91_000).lagMs, null);
});

Deno.test("IngestStats keeps the lags of the latest 16,384 batches only, whatever the chunk rate", () => {
  const stats = new IngestStats();
  for (let i = 0; i < 100_000; i++) stats.lag(1_000, 10);
  for (let i = 0; i < 16_384; i++) stats.lag(1, 20);
  assert.equal(stats.snapshot(30).lagMs, 1);
});

Deno.test("IngestStats.stuck() names a writer's permanent error and since when, until it commits", () => {
  const stats = new IngestStats();
  assert.equal(stats.stuck(0), null);
  assert.equal(stats.snapshot(0).stuck, null);
  stats.writerFailed(1, "40001: could not serialize", false, 100);
  assert.equal(stats.stuck(100), null, "a transient error is not stuck");
  stats.writerFailed(1, "42501: permission denied", true, 1_000);
  stats.writerFailed(1, "42501: permission denied again", true, 5_000);
  const since = new Date(performance.timeOrigin + 1_000).toISOString();
  const stuck = { reason: "writer 1 cannot commit: 42501: permission denied again", since };
  assert.deepEqual(stats.stuck(6_000), stuck, "since the first of the failures");
  assert.deepEqual(stats.snapshot(6_000).stuck, stuck);
  stats.writerCommitted(1);
  assert.equal(stats.stuck(6_000), null);
});

Deno.test("IngestStats.stuck() reports events pending 30 s without a commit, since the last progress", () => {
  const stats = new IngestStats();
  stats.queueDepth = () => [2, 3];
  stats.progressAt = 10_000;
  assert.equal(stats.stuck(39_999), null);
  assert.deepEqual(stats.stuck(40_000), {
    reason: "5 events pending and nothing committed for 30000 ms",
    since: new Date(performance.timeOrigin + 10_000).toISOString(),
  });
  stats.queueDepth = () => [0, 0];
  assert.equal(stats.stuck(40_000), null, "nothing pending is not stuck");
});
