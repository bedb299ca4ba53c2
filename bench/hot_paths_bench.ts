// deno task bench: the hot paths of ingest, per 64 KiB chunk of the demo feed
// (about 680 events) or per writer batch, each group beside a baseline that
// bounds it from below: TextDecoder for parsing, JSON.parse for validation,
// a bare loop for routing, structuredClone (what postMessage pays) for a batch.
import { createDemoFeed } from "../ingest/demo_feed.ts";
import { createShardRouter } from "../ingest/shard_router.ts";
import { shardOf } from "../ingest/shard.ts";
import { type SseEvent, SseParser } from "../ingest/sse_parser.ts";
import { IngestStats } from "../ingest/stats.ts";
import { validateScore } from "../ingest/validate.ts";
import { coalesce } from "../workers/coalesce.ts";
import type { Batch, WriterPool } from "../workers/mod.ts";

const body = createDemoFeed({ seed: 1, rate: 0, total: 50_000 })(
  new Request("http://feed.invalid/"),
).body!;
const chunks: Uint8Array[] = [];
for await (const chunk of body) chunks.push(chunk);
const bytes = chunks[1];
const text = new TextDecoder().decode(bytes);
const events: SseEvent[] = new SseParser({ maxEventChars: 1 << 20 }).push(text);
const datas = events.map((e) => e.data);

Deno.bench("TextDecoder.decode of a chunk", { group: "parse", baseline: true }, () => {
  new TextDecoder().decode(bytes);
});
Deno.bench(`SseParser.push of a chunk (${events.length} events)`, { group: "parse" }, () => {
  new SseParser({ maxEventChars: 1 << 20 }).push(text);
});

Deno.bench("JSON.parse of a chunk's data", { group: "validate", baseline: true }, () => {
  for (const data of datas) JSON.parse(data);
});
Deno.bench("validateScore of a chunk's data", { group: "validate" }, () => {
  for (const data of datas) validateScore(data);
});

const names = datas.map((d) => JSON.parse(d).studentId as string);
Deno.bench("loop over a chunk's studentIds", { group: "route", baseline: true }, () => {
  let n = 0;
  for (const name of names) n += name.length;
  if (n < 0) throw new Error("unreachable");
});
Deno.bench("shardOf for a chunk's studentIds", { group: "route" }, () => {
  for (const name of names) shardOf(name, 2);
});
const pool: WriterPool = {
  count: 2,
  ready: () => Promise.resolve(),
  send: () => {},
  pending: () => [0, 0],
  pendingChars: () => 0,
  crash: () => {},
  close: () => Promise.resolve(),
};
const router = createShardRouter({ pool, stats: new IngestStats(), onCommitted: () => {} });
Deno.bench("router.route of a chunk (validate + shard + columns)", { group: "route" }, () => {
  router.route({ events, lastEventId: events.at(-1)!.lastEventId });
});

// A writer's batch as the router builds it: one writer's half of 50,000 events.
const all = chunks.flatMap((c) =>
  new SseParser({ maxEventChars: 1 << 20 }).push(
    new TextDecoder().decode(c),
  )
);
const mine = all.map((e) => JSON.parse(e.data)).filter((s) => shardOf(s.studentId, 2) === 0);
const batch: Batch = {
  id: 1,
  names: mine.map((s) => s.studentId),
  chars: mine.reduce((n, s) => n + s.studentId.length, 0),
  exams: Int32Array.from(mine.map((s) => s.exam)),
  scores: Float64Array.from(mine.map((s) => s.score)),
  quarantine: [],
};
Deno.bench(`structuredClone of a batch (${batch.names.length} events)`, {
  group: "batch",
  baseline: true,
}, () => {
  structuredClone(batch);
});
Deno.bench("coalesce of the batch", { group: "batch" }, () => {
  coalesce([batch]);
});
const rows = coalesce([batch]);
Deno.bench("encode the batch's columns as array literals", { group: "batch" }, () => {
  `{${rows.exams.join(",")}}`.length + `{${rows.scores.join(",")}}`.length;
});
