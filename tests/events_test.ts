// GET /events against the real service and a real feed: subscribers from the start,
// mid-stream with a snapshot, filtered, dropped and resumed, reset, and one that
// never reads. Each one's reconstruction must equal the oracle for its filter.
import assert from "node:assert/strict";
import { scoreEventAt } from "../ingest/demo_feed.ts";
import { createDb, pruneChanges } from "../db/mod.ts";
import { createTestDatabase, databaseKinds, type TestDatabaseKind } from "./_db.ts";
import {
  filtered,
  resultCount,
  STALLED_SUBSCRIBER,
  subscribe,
  type Subscription,
} from "./_events_client.ts";
import { demoFeed, type FeedAnswer, serveFeed } from "./_feed_server.ts";
import { startService } from "./_service.ts";
import { until } from "./_wait.ts";
import { finalScores, type OracleEvent } from "./oracle.ts";

const TOTAL = 12_000;
const RATE = 2_000;
const REGRADES = 0.1;

type Scores = Map<string, Map<number, number>>;

/** A feed that answers nothing until `release()`: subscribers can be there from the start. */
function gatedFeed(answer: FeedAnswer) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const feed = serveFeed(async (request, n, closing) => {
    await gate;
    return answer(request, n, closing);
  });
  return { feed, release };
}

async function startOn(kind: TestDatabaseKind, databaseUrl: string, env: Record<string, string>) {
  const dataDir = `./data/test-${crypto.randomUUID()}`;
  const service = await startService(
    kind === "server"
      ? { DATABASE_URL: databaseUrl, ...env }
      : { DATA_DIR: dataDir, DATABASE_URL: "", ...env },
  );
  await until("the service to be ready", async () => {
    const response = await fetch(`${service.url}/readyz`);
    await response.body?.cancel();
    return response.ok;
  }, 60_000);
  return {
    service,
    async [Symbol.asyncDispose]() {
      await service.stop("SIGKILL");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Sorted entries, for deepEqual. */
const entries = (scores: Scores) =>
  [...scores].flatMap(([id, byExam]) =>
    [...byExam].map(([exam, score]) => `${id}:${exam}=${score}`)
  )
    .sort();

async function converges(name: string, subscription: Subscription, expected: Scores) {
  await until(
    () =>
      `${name} to hold the oracle's ${resultCount(expected)} results; it has ${
        resultCount(subscription.state)
      }`,
    () => resultCount(subscription.state) === resultCount(expected) || undefined,
    60_000,
  );
  assert.deepEqual(entries(subscription.state), entries(expected), name);
}

/** Every `result` event (after `from`) changes what the subscriber holds: none repeats one. */
function assertNoRepeats(name: string, subscription: Subscription, from = 0) {
  const state: Scores = new Map();
  subscription.events.forEach(({ event, data }, i) => {
    if (event === "reset") state.clear();
    if (event !== "result") return;
    const { studentId, exam, score } = JSON.parse(data);
    let byExam = state.get(studentId);
    if (!byExam) state.set(studentId, byExam = new Map());
    if (i >= from) {
      assert.notEqual(byExam.get(exam), score, `${name}: event ${i} repeats ${studentId}:${exam}`);
    }
    byExam.set(exam, score);
  });
}

/** Each (studentId, exam)'s scores come in the feed's order: a subsequence of its events. */
function assertFeedOrder(name: string, subscription: Subscription, events: OracleEvent[]) {
  const sequence = new Map<string, number[]>();
  for (const { studentId, exam, score } of events) {
    const key = `${studentId}:${exam}`;
    sequence.set(key, [...(sequence.get(key) ?? []), score]);
  }
  const position = new Map<string, number>();
  for (const { event, data } of subscription.events) {
    if (event !== "result") continue;
    const { studentId, exam, score } = JSON.parse(data);
    const key = `${studentId}:${exam}`;
    const scores = sequence.get(key) ?? [];
    const next = scores.indexOf(score, position.get(key) ?? 0);
    assert.ok(next >= 0, `${name}: ${key}=${score} is not a later score of its events`);
    position.set(key, next + 1);
  }
}

for (const kind of databaseKinds) {
  Deno.test(`GET /events: from the start, filtered, mid-stream with a snapshot, resumed and reset, each equal to the oracle (${kind})`, async () => {
    const seed = 1 + Math.floor(Math.random() * 1e9);
    const events = Array.from(
      { length: TOTAL },
      (_, i) => scoreEventAt(seed, i, { regradeRate: REGRADES }),
    );
    const final = finalScores(events);
    // Filters with something to show: a middle exam, the student with most events.
    const exam = events[TOTAL / 2].exam;
    const counts = new Map<string, number>();
    for (const e of events) counts.set(e.studentId, (counts.get(e.studentId) ?? 0) + 1);
    const student = [...counts].sort((a, b) => b[1] - a[1])[0][0];
    const inExam = events.find((e) => e.exam === exam && e.studentId !== student)!.studentId;

    const { feed, release } = gatedFeed(
      demoFeed({ seed, rate: RATE, total: TOTAL, regradeRate: REGRADES, retryMs: 100 }),
    );
    await using _feed = feed;
    await using database = await createTestDatabase(kind);
    await using started = await startOn(kind, database.url, {
      SCORES_URL: feed.url,
      WRITERS: "3",
    });
    const { url } = started.service;
    const opened: Subscription[] = [];
    const open = async (path: string, options?: { lastEventId?: string }) => {
      const s = await subscribe(`${url}${path}`, options);
      opened.push(s);
      return s;
    };
    try {
      // Malformed parameters are refused before any stream starts.
      for (const query of ["exam=abc", "exam=-1", "snapshot=yes", "studentId=", "page=2"]) {
        const response = await fetch(`${url}/events?${query}`);
        assert.equal(response.status, 400, query);
        assert.equal(response.headers.get("content-type"), "application/problem+json", query);
        await response.body?.cancel();
      }

      const all = await open("/events");
      const byExam = await open(`/events?exam=${exam}`);
      const byStudent = await open(`/events?studentId=${encodeURIComponent(student)}`);
      const both = await open(`/events?exam=${exam}&studentId=${encodeURIComponent(inExam)}`);
      const quiet = await open("/events?exam=2147483647");
      const dropped = await open("/events");
      const quietSince = performance.now();
      release();

      // Dropped after a while, resumed later from its last cursor.
      await until(
        "the dropped subscriber to get 500 results",
        () => dropped.events.length >= 500 || undefined,
        60_000,
      );
      dropped.close();
      // What it had parsed when the connection went is what it resumes after.
      await dropped.ended;
      const cursor = dropped.lastEventId()!;
      await started.service.waitFor((s) => s.ingest.applied >= TOTAL / 3);
      const mid = await open("/events?snapshot=true");
      const midExam = await open(`/events?snapshot=true&exam=${exam}`);
      const reset = await open("/events", { lastEventId: "00000000-1-1" });
      await started.service.waitFor((s) => s.ingest.applied >= (2 * TOTAL) / 3);
      const resumed = await open("/events", { lastEventId: cursor });

      await started.service.waitFor((s) => s.ingest.applied === TOTAL, 120_000);
      await converges("from the start", all, final);
      await converges("by exam", byExam, filtered(final, { exam }));
      await converges("by student", byStudent, filtered(final, { studentId: student }));
      await converges("by exam and student", both, filtered(final, { exam, studentId: inExam }));
      await converges("mid-stream snapshot", mid, final);
      await converges("mid-stream snapshot of an exam", midExam, filtered(final, { exam }));
      await converges("reset", reset, final);
      const combined: Subscription = {
        ...resumed,
        events: [...dropped.events, ...resumed.events],
        state: new Map(),
      };
      for (const { event, data } of combined.events) {
        if (event !== "result") continue;
        const r = JSON.parse(data);
        if (!combined.state.has(r.studentId)) combined.state.set(r.studentId, new Map());
        combined.state.get(r.studentId)!.set(r.exam, r.score);
      }
      assert.deepEqual(entries(combined.state), entries(final), "dropped, then resumed");
      assert.ok(resumed.events.length > 0 && resumed.events.every((e) => e.event === "result"));

      // What each stream is made of.
      assert.equal(all.retry, 1000);
      assert.ok(all.events.every((e) => e.event === "result" && e.id), "only changes, with ids");
      assert.equal(new Set(all.events.map((e) => e.id)).size, all.events.length);
      assertNoRepeats("from the start", all);
      assertNoRepeats("dropped, then resumed", combined);
      assertFeedOrder("from the start", all, events);
      assertFeedOrder("by student", byStudent, events);
      assert.equal(quiet.events.length, 0);
      for (const [name, s] of [["mid-stream snapshot", mid], ["reset", reset]] as const) {
        const kinds = s.events.map((e) => e.event);
        const live = kinds.indexOf("live");
        assert.ok(live > 0, `${name}: a snapshot, then live`);
        assert.equal(kinds.lastIndexOf("live"), live, `${name}: one live`);
        assert.ok(s.events.slice(0, live).every((e) => e.id === undefined || e.event === "reset"));
        assert.ok(s.events.slice(live + 1).every((e) => e.event === "result" && e.id));
        assert.ok(s.events.length > live + 1, `${name}: changes after the snapshot`);
        assertNoRepeats(name, s, live + 1);
      }
      assert.equal(reset.events[0].event, "reset");
      assert.equal(mid.events.filter((e) => e.event === "reset").length, 0);

      // Heartbeats: a comment at least every 15 s, even on a stream with no events.
      await until("a heartbeat", () => quiet.comments.length > 0 || undefined, 16_000);
      assert.ok(quiet.comments[0] - quietSince <= 15_000);

      const stats = await started.service.json<{ events: Record<string, number> }>("/stats");
      assert.equal(stats.events.subscribers, opened.length - 1, "all but the dropped one");
      assert.equal(stats.events.resets, 1);
      assert.ok(stats.events.sent >= all.events.length);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(
        metrics,
        new RegExp(`^scorestream_events_subscribers ${opened.length - 1}$`, "m"),
      );
      assert.match(metrics, /^scorestream_events_sent_total \d+$/m);

      if (kind === "server") {
        // Pruned past a cursor: resuming from it resets, then converges.
        const pruner = createDb({ url: database.url });
        try {
          assert.ok(await pruneChanges(pruner.db, { ms: 0, changes: 100 }) > 0);
        } finally {
          await pruner.close();
        }
        const old = await open("/events", { lastEventId: all.events[0].id });
        await converges("resumed from a pruned cursor", old, final);
        assert.equal(old.events[0].event, "reset");
      }
    } finally {
      for (const s of opened) s.close();
      await Promise.all(opened.map((s) => s.ended));
    }
  });

  Deno.test(`GET /events: a subscriber that never reads is cut off once its buffer fills; a reader that resumes gets everything (${kind})`, async () => {
    // Enough that the kernel's socket buffers (megabytes on loopback) and the chunk in
    // flight cannot take it all.
    const total = 150_000;
    const seed = 1 + Math.floor(Math.random() * 1e9);
    const { feed, release } = gatedFeed(demoFeed({ seed, rate: 1e7, total, retryMs: 100 }));
    await using _feed = feed;
    await using database = await createTestDatabase(kind);
    await using started = await startOn(kind, database.url, {
      SCORES_URL: feed.url,
      EVENTS_BUFFER_BYTES: String(1 << 20),
    });
    const { url } = started.service;
    // A client that sends its request and never reads a byte, with a small receive
    // buffer: the loopback's own buffers would otherwise take megabytes first.
    const stalled = new Deno.Command("python3", {
      args: ["-c", STALLED_SUBSCRIBER, new URL(url).port],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const stdin = stalled.stdin.getWriter();
    const withEvents = (s: unknown) => (s as StatsWithEvents).events;
    await started.service.waitFor((s) => withEvents(s).subscribers === 1);
    // It reads, and reconnects with its cursor when cut off (slower than ingest, as
    // a client may be), as EventSource does.
    const reading = await subscribe(`${url}/events`, { reconnect: true });
    try {
      release();
      await started.service.waitFor((s) => withEvents(s).slow >= 1, 120_000);
      await started.service.waitFor((s) => s.ingest.applied === total, 120_000);
      const expected = finalScores(Array.from({ length: total }, (_, i) => scoreEventAt(seed, i)));
      await converges("the reader beside it", reading, expected);
      assert.equal(reading.events.filter((e) => e.event === "reset").length, 0);
      assertNoRepeats("the reader beside it", reading);
      // Once it reads, it finds its stream cut off: no end of the chunked body.
      await stdin.write(new TextEncoder().encode("read\n"));
      await stdin.close();
      const output = new TextDecoder().decode((await stalled.output()).stdout);
      assert.match(output, /^closed after \d+ bytes, complete: False$/m);
    } finally {
      reading.close();
      await reading.ended;
      try {
        stalled.kill();
      } catch { /* exited */ }
    }
  });
}

interface StatsWithEvents {
  events: { subscribers: number; slow: number };
}
