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
