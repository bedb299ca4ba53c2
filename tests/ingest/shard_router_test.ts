import assert from "node:assert/strict";
import { createShardRouter } from "../../ingest/shard_router.ts";
import type { SseEvent } from "../../ingest/sse_parser.ts";
import { IngestStats } from "../../ingest/stats.ts";
import type { Batch, WriterPool } from "../../workers/mod.ts";

/** A pool that records what it is sent; the test acknowledges by hand. */
function recordingPool(count: number) {
  const sent: { writer: number; batch: Batch }[] = [];
  const pool: WriterPool = {
    count,
    ready: () => Promise.resolve(),
    send: (writer, batch) => void sent.push({ writer, batch }),
    pending: () =>
      Array.from({ length: count }, (_, w) =>
        sent.filter((s) => s.writer === w).reduce(
          (n, s) => n + s.batch.names.length + s.batch.quarantine.length,
          0,
        )),
    pendingChars: () => 0,
    crash: () => {},
    close: () => Promise.resolve(),
  };
  const ack = (batch: Batch) => {
    sent.splice(sent.findIndex((s) => s.batch === batch), 1);
    return { ids: [batch.id], applied: batch.names.length, commitMs: 1, refused: 0 };
  };
  return { pool, sent, ack };
}

const score = (id: string, studentId: string, exam = 1, value = 0.5): SseEvent => ({
  type: "score",
  data: JSON.stringify({ exam, studentId, score: value }),
  lastEventId: id,
});

Deno.test("createShardRouter() sends each writer one batch per chunk, students sharded stably", () => {
  const { pool, sent } = recordingPool(3);
  const router = createShardRouter({ pool, stats: new IngestStats(), onCommitted: () => {} });
  const events = Array.from({ length: 300 }, (_, i) => score(String(i), `S${i % 30}`));
  router.route({ events, lastEventId: "299" });
  assert.ok(sent.length <= 3);
  assert.equal(sent.reduce((n, s) => n + s.batch.names.length, 0), 300);
  const owner = new Map<string, number>();
  for (const { writer, batch } of sent) {
    for (const name of batch.names) {
      assert.equal(owner.get(name) ?? writer, writer, `${name} goes to one writer`);
      owner.set(name, writer);
    }
  }
});

Deno.test("createShardRouter() moves the checkpoint only past rounds whose earlier rounds are committed", () => {
  const { pool, sent, ack } = recordingPool(2);
  const committed: string[] = [];
  const router = createShardRouter({
    pool,
    stats: new IngestStats(),
    onCommitted: (id) => committed.push(id),
  });
  router.route({ events: [score("1", "a"), score("2", "b"), score("3", "c")], lastEventId: "3" });
  router.route({ events: [score("4", "a"), score("5", "b"), score("6", "c")], lastEventId: "6" });
  const [first, second] = [sent.slice(0, -2), sent.slice(-2)];
  assert.ok(first.length >= 1 && second.length >= 1);
  for (const s of second) router.acked(ack(s.batch));
  assert.deepEqual(committed, [], "round 2 is committed but round 1 is not");
  for (const s of [...first]) router.acked(ack(s.batch));
  assert.deepEqual(committed, ["6"]);
});

Deno.test("createShardRouter() counts ignored and rejected events and quarantines the rejected", () => {
  const { pool, sent } = recordingPool(2);
  const stats = new IngestStats();
  const router = createShardRouter({ pool, stats, onCommitted: () => {} });
  router.route({
    events: [
      { type: "ping", data: "x", lastEventId: "1" },
      { type: "score", data: '{"exam": 1, "studentId": "a", "score": 2}', lastEventId: "2" },
      { type: "score", data: "nope\0", lastEventId: "" },
      score("4", "a"),
    ],
    lastEventId: "4",
  });
  assert.equal(stats.received, 4);
  assert.equal(stats.ignored, 1);
  assert.deepEqual(stats.rejectedByReason, { invalid_score: 1, invalid_json: 1 });
  const quarantined = sent.flatMap((s) => s.batch.quarantine);
  assert.deepEqual(quarantined.map((q) => [q.eventId, q.reason.split(":")[0], q.raw]), [
    ["2", "invalid_score", '{"exam": 1, "studentId": "a", "score": 2}'],
    [null, "invalid_json", "nope\uFFFD"],
  ]);
});

Deno.test("createShardRouter() holds the feed back while too many events are pending", async () => {
  const { pool, sent, ack } = recordingPool(1);
  const router = createShardRouter({
    pool,
    stats: new IngestStats(),
    maxPendingEvents: 5,
    onCommitted: () => {},
  });
  assert.equal(router.route({ events: [score("1", "a")], lastEventId: "1" }), undefined);
  const events = Array.from({ length: 10 }, (_, i) => score(String(i + 2), `s${i}`));
  const held = router.route({ events, lastEventId: "11" });
  assert.ok(held instanceof Promise, "the reader must wait");
  let released = false;
  held.then(() => released = true);
  router.acked(ack(sent[0].batch));
  await Promise.resolve();
  assert.equal(released, false, "10 events still pending");
  router.acked(ack(sent[0].batch));
  await held;
  assert.equal(released, true);
});

Deno.test("createShardRouter() moves the checkpoint for a chunk with no events, such as an id-only block", () => {
  const { pool } = recordingPool(2);
  const committed: string[] = [];
  const router = createShardRouter({
    pool,
    stats: new IngestStats(),
    onCommitted: (id) => committed.push(id),
  });
  router.route({ events: [], lastEventId: "42" });
  assert.deepEqual(committed, ["42"]);
});

Deno.test("createShardRouter() reports the students and exams of exactly the batches acknowledged", () => {
  const { pool, sent, ack } = recordingPool(2);
  const changed: { students: string[]; exams: number[] }[] = [];
  const router = createShardRouter({
    pool,
    stats: new IngestStats(),
    onCommitted: () => {},
    onChanged: ({ students, exams }) =>
      changed.push({ students: [...students], exams: [...exams].sort((a, b) => a - b) }),
  });
  router.route({
    events: [score("1", "a", 1), score("2", "b", 2), score("3", "a", 3), score("4", "c", 2)],
    lastEventId: "4",
  });
  router.route({
    events: [{ type: "score", data: "nope", lastEventId: "5" }],
    lastEventId: "5",
  });
  const batches = sent.map((s) => s.batch);
  const expected = batches.map((batch) => ({
    students: batch.names,
    exams: [...new Set(batch.exams)].sort((a, b) => a - b),
  }));
  assert.ok(batches.filter((b) => b.names.length > 0).length === 2, "a, b and c on two writers");
  for (const batch of batches) router.acked(ack(batch));
  assert.deepEqual(changed, expected.filter((e) => e.students.length > 0));
  // Every event's student, repeats and all: "a" sent two events.
  assert.deepEqual(changed.flatMap((c) => c.students).sort(), ["a", "a", "b", "c"]);
});

Deno.test("createShardRouter() keeps a 1 KiB excerpt of a rejected event, not the whole event, until it commits", async () => {
  // Heap use is only exact after a full GC, which needs a V8 flag: hence a process of its own.
  const script = `
    import { createShardRouter } from ${
    JSON.stringify(new URL("../../ingest/shard_router.ts", import.meta.url).href)
  };
    import { IngestStats } from ${
    JSON.stringify(new URL("../../ingest/stats.ts", import.meta.url).href)
  };
    const held = [];
    const pool = { count: 2, send: (_, batch) => held.push(batch), pending: () => [0, 0],
      pendingChars: () => 0, crash() {}, close: () => Promise.resolve() };
    const router = createShardRouter({ pool, stats: new IngestStats(), onCommitted() {} });
    gc();
    const before = Deno.memoryUsage().heapUsed;
    for (let i = 0; i < 64; i++) {
      // Not JSON, and 1 MiB of it: quarantined with an excerpt.
      const data = "{" + String(i).padEnd(1 << 20, "x");
      router.route({ events: [{ type: "score", data, lastEventId: String(i) }], lastEventId: String(i) });
    }
    gc();
    const after = Deno.memoryUsage().heapUsed;
    console.log(JSON.stringify({ held: held.flatMap((b) => b.quarantine).length, grew: after - before }));
  `;
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
  const { held, grew } = JSON.parse(new TextDecoder().decode(stdout));
  assert.equal(held, 64);
  // 64 excerpts of 1 KiB and their rows, not 64 MiB of events.
  assert.ok(grew < 8 << 20, `the heap grew by ${(grew / 1048576).toFixed(1)} MiB`);
});
