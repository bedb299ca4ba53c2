import assert from "node:assert/strict";
import { createApi, type IngestSnapshot } from "../../api/mod.ts";
import type { Queries } from "../../db/mod.ts";

const snapshot: IngestSnapshot = {
  role: "leader",
  epoch: 3,
  leader: { instance: "a", since: "2026-01-01T00:00:00.000Z" },
  takeovers: 1,
  fenced: 2,
  state: "open",
  received: 3,
  applied: 2,
  rejected: 1,
  rejectedByReason: { "not json": 1 },
  ignored: 0,
  reconnects: 0,
  lastEventId: "2",
  lagMs: 1,
  checkpointAgeMs: 1,
  queueDepth: [0, 1],
  stuck: null,
  batchSize: { buckets: [1], counts: [1], sum: 1, count: 1 },
  commitLatencyMs: { buckets: [1], counts: [1], sum: 1, count: 1 },
};

/** Each /stats ingest field and the metric that reports the same quantity. */
const SAME_QUANTITY: Record<string, string> = {
  role: "scorestream_ingest_leader",
  epoch: "scorestream_ingest_epoch",
  takeovers: "scorestream_ingest_takeovers_total",
  fenced: "scorestream_ingest_fenced_commits_total",
  state: "scorestream_ingest_state",
  received: "scorestream_ingest_events_received_total",
  applied: "scorestream_ingest_events_applied_total",
  rejectedByReason: "scorestream_ingest_events_rejected_total",
  ignored: "scorestream_ingest_events_ignored_total",
  reconnects: "scorestream_ingest_reconnects_total",
  lagMs: "scorestream_ingest_lag_seconds",
  checkpointAgeMs: "scorestream_ingest_checkpoint_age_seconds",
  queueDepth: "scorestream_writer_queue_depth",
  stuck: "scorestream_ingest_stuck",
};

Deno.test("each /stats field is described in OpenAPI as its metric's HELP says", async () => {
  const app = createApi({
    queries: {} as Queries,
    ready: () => Promise.resolve(true),
    stats: { snapshot: () => snapshot },
  });
  const doc = await (await app.request("/openapi.json")).json();
  const fields = doc.components.schemas.Stats.properties.ingest.properties;
  const metrics = await (await app.request("/metrics")).text();
  const help = new Map(
    [...metrics.matchAll(/^# HELP (\S+) (.*)$/gm)].map(([, name, text]) => [name, text]),
  );
  for (const [field, metric] of Object.entries(SAME_QUANTITY)) {
    assert.ok(help.has(metric), metric);
    assert.equal(fields[field]?.description, help.get(metric), `${field} and ${metric}`);
  }
});
