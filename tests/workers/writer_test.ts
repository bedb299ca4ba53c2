import assert from "node:assert/strict";
import { sql } from "kysely";
import { createDb } from "../../db/mod.ts";
import type { Ack, Batch, Retry } from "../../workers/protocol.ts";
import { createWriter, type WriterOptions } from "../../workers/writer.ts";
import { createTestDatabase, databaseKinds, type TestDatabase } from "../_db.ts";
import { startTcpProxy } from "../_tcp_proxy.ts";
import { until } from "../_wait.ts";

let nextId = 1;
function batch(rows: [string, number, number][]): Batch {
  return {
    id: nextId++,
    names: rows.map((r) => r[0]),
    chars: rows.reduce((n, r) => n + r[0].length, 0),
    exams: new Int32Array(rows.map((r) => r[1])),
    scores: new Float64Array(rows.map((r) => r[2])),
    quarantine: [],
  };
}

async function results(t: TestDatabase) {
  const { rows } = await sql<{ name: string; exam: number; score: number }>`
    SELECT s.name, r.exam, r.score FROM results r JOIN students s ON s.id = r.student
    ORDER BY s.name, r.exam`.execute(t.db);
  return rows.map((r) => `${r.name}/${r.exam}=${r.score}`);
}

/** Writer 0, reaching `t` through a TCP proxy (to cut), with its retries recorded. */
function proxiedWriter(t: TestDatabase, options: Partial<WriterOptions>) {
  const url = new URL(t.url);
  const proxy = startTcpProxy({ hostname: url.hostname, port: Number(url.port || 5432) });
  url.port = String(proxy.port);
  const retries: Retry[] = [];
  const writer = createWriter({
    writer: 0,
    connect: () => createDb({ url: url.href }),
    onAck: () => {},
    onRetry: (r) => retries.push(r),
    ...options,
  });
  return { proxy, writer, retries };
}

for (const kind of databaseKinds) {
  Deno.test(`writer applies batches in arrival order and acknowledges each (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const acks: Ack[] = [];
    const writer = createWriter({
      writer: 0,
      connect: () => createDb({ url: t.url }),
      onAck: (ack) => acks.push(ack),
      maxBatchEvents: 2,
    });
    const sent = [
      batch([["a", 1, 0.1], ["a", 1, 0.2]]),
      batch([["a", 1, 0.3]]),
      batch([["b", 1, 0.4], ["a", 1, 0.5]]),
    ];
    for (const b of sent) writer.enqueue(b);
    await writer.drained();
    await writer.close();
    assert.deepEqual(acks.flatMap((a) => a.ids), sent.map((b) => b.id));
    assert.equal(acks.reduce((n, a) => n + a.applied, 0), 5);
    assert.deepEqual(await results(t), ["a/1=0.5", "b/1=0.4"]);
  });

  Deno.test(`writer retries through a database outage and loses nothing (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const { proxy, writer, retries } = proxiedWriter(t, { initialRetryMs: 10, maxRetryMs: 50 });
    await using _ = proxy;
    proxy.down();
    writer.enqueue(batch([["a", 1, 0.25]]));
    await until("three retries", () => retries.length >= 3, 10_000, 10);
    proxy.up();
    await writer.drained();
    await writer.close();
    assert.deepEqual(await results(t), ["a/1=0.25"]);
    assert.ok(retries.every((r) => r.delayMs <= 50), "backoff is capped");
  });

  Deno.test(`writer abandons a statement past its deadline on a silent network (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const { proxy, writer, retries } = proxiedWriter(t, { deadlineMs: 200, initialRetryMs: 10 });
    await using _ = proxy;
    writer.enqueue(batch([["warmup", 1, 0.5]]));
    await writer.drained();
    proxy.stall();
    writer.enqueue(batch([["a", 1, 0.75]]));
    await until("a retry", () => retries.length >= 1, 10_000, 10);
    proxy.up();
    await writer.drained();
    await writer.close();
    assert.match(retries[0].error, /Cannot commit within 200 ms/);
    assert.deepEqual(await results(t), ["a/1=0.75", "warmup/1=0.5"]);
  });

  Deno.test(`writer quarantines a row Postgres refuses and keeps the rest (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    // A real refusal by Postgres: a constraint only this test adds.
    await sql`ALTER TABLE results ADD CONSTRAINT no_magic CHECK (score <> 0.4242)`.execute(t.db);
    const acks: Ack[] = [];
    const writer = createWriter({
      writer: 0,
      connect: () => createDb({ url: t.url }),
      onAck: (ack) => acks.push(ack),
    });
    writer.enqueue(batch([["a", 1, 0.1], ["b", 1, 0.4242], ["c", 1, 0.3], ["d", 1, 0.4]]));
    writer.enqueue(batch([["e", 1, 0.5]]));
    await writer.drained();
    await writer.close();
    assert.deepEqual(await results(t), ["a/1=0.1", "c/1=0.3", "d/1=0.4", "e/1=0.5"]);
    assert.equal(acks.reduce((n, a) => n + a.refused, 0), 1);
    const { rows } = await sql<{ reason: string; raw: string }>`
      SELECT reason, raw FROM quarantine`.execute(t.db);
    assert.equal(rows.length, 1);
    assert.match(rows[0].reason, /^refused_by_database: 23514/);
    assert.deepEqual(JSON.parse(rows[0].raw), { exam: 1, studentId: "b", score: 0.4242 });
  });

  Deno.test(`writer skips a quarantine row Postgres refuses, and acknowledges the rest (${kind})`, async () => {
    await using t = await createTestDatabase(kind);
    const acks: Ack[] = [];
    const retries: Retry[] = [];
    const writer = createWriter({
      writer: 0,
      connect: () => createDb({ url: t.url }),
      onAck: (ack) => acks.push(ack),
      onRetry: (r) => retries.push(r),
      initialRetryMs: 10,
      maxRetryMs: 50,
    });
    // Postgres text cannot hold NUL: 22021 whatever is retried.
    const refused = { eventId: "a\0b", reason: "invalid_json: x", raw: "x" };
    const kept = { eventId: "7", reason: "invalid_json: y", raw: "y" };
    writer.enqueue({ ...batch([["a", 1, 0.5]]), quarantine: [refused, kept] });
    writer.enqueue(batch([["b", 1, 0.25]]));
    await writer.drained();
    await writer.close();
    assert.deepEqual(await results(t), ["a/1=0.5", "b/1=0.25"]);
    assert.equal(acks.flatMap((a) => a.ids).length, 2);
    assert.equal(retries.length, 0, "a data error is not retried");
    const { rows } = await sql<{ event_id: string | null; reason: string }>`
      SELECT event_id, reason FROM quarantine ORDER BY event_id`.execute(t.db);
    assert.deepEqual(rows.map((r) => r.event_id), ["7", null]);
    assert.match(rows[1].reason, /^refused_by_database: 22021/);
  });
}

if (databaseKinds.includes("server")) {
  Deno.test("a writer whose epoch is stale commits nothing, reports fenced once and stops (server)", async () => {
    await using t = await createTestDatabase("server");
    const feed = "http://feed.test/scores";
    await sql`INSERT INTO ingest_leader VALUES (${feed}, 2, 'b', now(), now() + interval '1 hour',
      false)`.execute(t.db);
    const acks: Ack[] = [];
    const retries: Retry[] = [];
    const fenced: string[] = [];
    const writer = createWriter({
      writer: 0,
      connect: () => createDb({ url: t.url }),
      fence: { feed, epoch: 1 },
      onAck: (ack) => acks.push(ack),
      onRetry: (retry) => retries.push(retry),
      onFenced: (error) => fenced.push(error),
    });
    writer.enqueue(batch([["a", 1, 0.1]]));
    writer.enqueue(batch([["b", 1, 0.2]]));
    await writer.drained();
    writer.enqueue(batch([["c", 1, 0.3]]));
    await writer.drained();
    await writer.close();
    assert.equal(fenced.length, 1);
    assert.match(fenced[0], /^SF001: /);
    assert.equal(acks.length, 0);
    assert.equal(retries.length, 0, "a fenced commit is not retried");
    assert.deepEqual(await results(t), []);

    const current = createWriter({
      writer: 0,
      connect: () => createDb({ url: t.url }),
      fence: { feed, epoch: 2 },
      onAck: (ack) => acks.push(ack),
    });
    current.enqueue(batch([["a", 1, 0.1]]));
    await current.drained();
    await current.close();
    assert.deepEqual(await results(t), ["a/1=0.1"], "the current epoch commits");
  });
}
