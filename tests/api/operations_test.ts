import assert from "node:assert/strict";
import { createApi, type IngestSnapshot } from "../../api/mod.ts";
import { applyScores, type Queries, ReadError } from "../../db/mod.ts";
import { databaseKinds } from "../_db.ts";
import { createApiFixture } from "./_fixture.ts";

function snapshot(overrides: Partial<IngestSnapshot> = {}): IngestSnapshot {
  return {
    role: "leader",
    epoch: null,
    leader: null,
    takeovers: 0,
    fenced: 0,
    state: "streaming",
    received: 1200,
    applied: 1150,
    rejected: 30,
    rejectedByReason: { "score out of range": 20, 'bad "json"\n': 10 },
    ignored: 20,
    reconnects: 2,
    lastEventId: "evt-1199",
    lagMs: 12.5,
    checkpointAgeMs: 250,
    queueDepth: [3, 0],
    stuck: null,
    batchSize: { buckets: [1, 10, 100], counts: [2, 5, 3], sum: 420, count: 11 },
    commitLatencyMs: { buckets: [1, 5, 25], counts: [4, 6, 1], sum: 40, count: 11 },
    ...overrides,
  };
}

/** Queries whose every method fails as the database would when it is down. */
const downQueries = new Proxy({} as Queries, {
  get: () => () => Promise.reject(new ReadError("unavailable")),
});

for (const kind of databaseKinds) {
  Deno.test(`operational routes (${kind} database)`, async (t) => {
    await using fx = await createApiFixture(kind, { stats: { snapshot: () => snapshot() } });

    await t.step("GET /stats counts students, exams and results and reports ingest", async () => {
      const { status, body, res } = await fx.get("/stats");
      assert.equal(status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store");
      const exams = new Set([...fx.scores.values()].flatMap((m) => [...m.keys()]));
      const results = [...fx.scores.values()].reduce((n, m) => n + m.size, 0);
      const { batchSize: _b, commitLatencyMs: _c, ...ingest } = snapshot();
      assert.deepEqual(body, {
        students: fx.scores.size,
        exams: exams.size,
        results,
        quarantined: {},
        ingest,
        events: null,
        lastErrors: { feed: null, database: null },
      });
    });

    await t.step(
      "GET /stats counts the stored quarantine by reason code, whatever the message",
      async () => {
        await applyScores(fx.database.db, 0, { names: [], exams: [], scores: [] }, [
          { eventId: "q1", reason: "invalid_json: Cannot parse: unexpected end", raw: "{" },
          { eventId: "q2", reason: "invalid_score: Cannot accept score 2", raw: '{"score": 2}' },
          { eventId: "q3", reason: "invalid_json: Cannot parse: unexpected token", raw: "nope" },
        ]);
        // Past the 1 s the counts are reused for.
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        const { body } = await fx.get("/stats");
        assert.deepEqual((body as { quarantined: unknown }).quarantined, {
          invalid_json: 2,
          invalid_score: 1,
        });
        const { body: page } = await fx.get("/quarantine?limit=1000");
        assert.equal((page as { events: unknown[] }).events.length, 3);
      },
    );

    await t.step("GET /readyz answers 200 when the database answers and is migrated", async () => {
      const { status, body } = await fx.get("/readyz");
      assert.equal(status, 200);
      assert.deepEqual(body, { status: "ready" });
    });

    await t.step("GET /healthz answers 200", async () => {
      assert.deepEqual((await fx.get("/healthz")).body, { status: "ok" });
    });

    await t.step(
      "GET /metrics labels request durations by route pattern, not by raw path",
      async () => {
        await fx.get("/students/a");
        await fx.get("/exams/7");
        await fx.get("/exams/7.5");
        await fx.get("/no/such/route");
        const { status, body, res } = await fx.get("/metrics");
        assert.equal(status, 200);
        assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
        const text = body as string;
        assert.match(
          text,
          /scorestream_http_request_duration_seconds_count\{method="GET",route="\/students\/\{studentId\}",status="200"\} [1-9]/,
        );
        assert.match(text, /route="\/exams\/\{exam\}",status="400"/);
        assert.match(text, /route="unmatched",status="404"/);
        assert.doesNotMatch(text, /route="\/students\/a"|\/exams\/7\.5|\/no\/such/);
      },
    );

    await t.step("GET /metrics exports ingest counters, queue depth and histograms", async () => {
      const text = (await fx.get("/metrics")).body as string;
      for (
        const line of [
          "scorestream_ingest_events_received_total 1200",
          "scorestream_ingest_events_applied_total 1150",
          'scorestream_ingest_events_rejected_total{reason="score out of range"} 20',
          'scorestream_ingest_events_rejected_total{reason="bad \\"json\\"\\n"} 10',
          "scorestream_ingest_events_ignored_total 20",
          "scorestream_ingest_reconnects_total 2",
          "scorestream_ingest_lag_seconds 0.0125",
          "scorestream_ingest_checkpoint_age_seconds 0.25",
          'scorestream_writer_queue_depth{writer="0"} 3',
          'scorestream_writer_queue_depth{writer="1"} 0',
          'scorestream_writer_batch_size_bucket{le="10"} 7',
          'scorestream_writer_batch_size_bucket{le="+Inf"} 11',
          "scorestream_writer_batch_size_sum 420",
          'scorestream_writer_commit_latency_seconds_bucket{le="0.005"} 10',
          "scorestream_writer_commit_latency_seconds_sum 0.04",
          'scorestream_ingest_state{state="streaming"} 1',
          "# TYPE scorestream_writer_commit_latency_seconds histogram",
        ]
      ) {
        assert.ok(text.split("\n").includes(line), `missing: ${line}`);
      }
      assert.match(text, /^process_resident_memory_bytes \d+$/m);
    });

    await t.step(
      "access logs are JSON-ready entries with request id, route pattern and status",
      () => {
        const entry = fx.logs.find((e) => e.msg === "request" && e.path === "/students/a")!;
        assert.equal(entry.route, "/students/{studentId}");
        assert.equal(entry.status, 200);
        assert.equal(entry.level, "info");
        assert.equal(typeof entry.requestId, "string");
        assert.equal(typeof entry.durationMs, "number");
        assert.doesNotThrow(() => JSON.stringify(entry));
      },
    );
  });
}

Deno.test("GET /stats reports null counts and still reports ingest while the database is down", async () => {
  const app = createApi({
    queries: downQueries,
    ready: () => Promise.resolve(false),
    stats: { snapshot: () => snapshot({ state: "backoff" }) },
  });
  const res = await app.request("/stats");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.students, null);
  assert.equal(body.results, null);
  assert.equal(body.quarantined, null);
  assert.equal(body.ingest.state, "backoff");
});

Deno.test("GET /stats reports ingest as null on an instance that does not ingest", async () => {
  const queries = {
    totals: () =>
      Promise.resolve({
        students: 1,
        exams: 2,
        results: 3,
        quarantined: { x: 4 } as Record<string, number>,
      }),
  };
  const app = createApi({ queries: queries as Queries, ready: () => Promise.resolve(true) });
  assert.deepEqual(await (await app.request("/stats")).json(), {
    students: 1,
    exams: 2,
    results: 3,
    quarantined: { x: 4 },
    ingest: null,
    events: null,
    lastErrors: { feed: null, database: null },
  });
});

Deno.test("before the database is migrated, reads answer 503 problem+json with Retry-After and never reach it", async () => {
  let reads = 0;
  const read = () => {
    reads++;
    return Promise.reject(new Error('relation "students" does not exist'));
  };
  const queries = new Proxy({}, { get: () => read }) as Queries;
  let migrated = false;
  const lastErrors = {
    feed: null,
    database: { error: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:5999", at: "2026-01-01" },
  };
  const app = createApi({
    queries,
    ready: () => Promise.resolve(migrated),
    migrated: () => migrated,
    lastErrors: () => lastErrors,
  });
  for (const path of ["/students", "/students/a", "/exams", "/exams/1", "/exams/1/top"]) {
    const res = await app.request(path);
    assert.equal(res.status, 503, path);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.equal(res.headers.get("retry-after"), "1");
    await res.body?.cancel();
  }
  const ready = await app.request("/readyz");
  assert.equal(ready.status, 503);
  assert.equal(ready.headers.get("retry-after"), "1");
  assert.deepEqual((await ready.json()).lastErrors, lastErrors);
  const stats = await (await app.request("/stats")).json();
  assert.equal(stats.students, null);
  assert.deepEqual(stats.lastErrors, lastErrors);
  assert.equal((await app.request("/healthz")).status, 200);
  assert.equal(reads, 0);
  migrated = true;
  assert.equal((await app.request("/readyz")).status, 200);
});

Deno.test("GET /stats reads the counts at most once per statsCacheMs", async () => {
  let reads = 0;
  const queries = {
    totals: () => Promise.resolve({ students: ++reads, exams: 0, results: 0, quarantined: {} }),
  };
  const app = createApi({
    queries: queries as Queries,
    ready: () => Promise.resolve(true),
    statsCacheMs: 60_000,
  });
  await Promise.all([app.request("/stats"), app.request("/stats"), app.request("/stats")]);
  assert.equal((await (await app.request("/stats")).json()).students, 1);
  assert.equal(reads, 1);
});

Deno.test("GET /readyz answers 503 problem+json when not ready, when the check fails or hangs", async () => {
  const never = () => new Promise<boolean>(() => {});
  for (
    const ready of [
      () => Promise.resolve(false),
      () => Promise.reject(new Error("connect ECONNREFUSED")),
      never,
    ]
  ) {
    const app = createApi({ queries: downQueries, ready, readyTimeoutMs: 50 });
    const res = await app.request("/readyz");
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const body = await res.text();
    assert.doesNotMatch(body, /ECONNREFUSED/);
  }
});

Deno.test("GET /readyz answers 503 naming why while ingest is stuck, as /stats's ingest.stuck says", async () => {
  let stuck: IngestSnapshot["stuck"] = {
    reason: "writer 0 cannot commit: 42501: permission denied for table result",
    since: "2026-01-01T00:00:00.000Z",
  };
  const app = createApi({
    queries: {
      totals: () => Promise.resolve({ students: 0, exams: 0, results: 0, quarantined: {} }),
    } as Queries,
    ready: () => Promise.resolve(true),
    stats: { snapshot: () => snapshot({ stuck }) },
  });
  const res = await app.request("/readyz");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "1");
  const body = await res.json();
  assert.match(body.detail, /stuck: writer 0 cannot commit: 42501/);
  assert.deepEqual(body.stuck, stuck);
  assert.deepEqual((await (await app.request("/stats")).json()).ingest.stuck, stuck);
  assert.match(await (await app.request("/metrics")).text(), /^scorestream_ingest_stuck 1$/m);
  stuck = null;
  assert.equal((await app.request("/readyz")).status, 200);
  assert.equal((await (await app.request("/stats")).json()).ingest.stuck, null);
});

Deno.test("GET /healthz answers 200 even while the database is down", async () => {
  const app = createApi({ queries: downQueries, ready: () => Promise.resolve(false) });
  assert.equal((await app.request("/healthz")).status, 200);
});

Deno.test("GET /metrics works without an ingest source", async () => {
  const app = createApi({ queries: downQueries, ready: () => Promise.resolve(false) });
  const text = await (await app.request("/metrics")).text();
  assert.match(text, /# TYPE scorestream_http_request_duration_seconds histogram/);
  assert.doesNotMatch(text, /scorestream_ingest_/);
});
