import assert from "node:assert/strict";
import { createDemoFeed, type DemoScore, scoreEventAt } from "../../ingest/demo_feed.ts";
import { compareUtf8, expectedState } from "../oracle.ts";

interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

interface Received {
  events: SseEvent[];
  comments: string[];
  /** Text after the last blank line: an event cut off by the end of the body. */
  rest: string;
  ended: boolean;
}

// The feed writes only "\n" line ends and never splits a field, so a plain split is a
// faithful parser for it.
function parseSse(text: string): Omit<Received, "ended"> {
  const blocks = text.split("\n\n");
  const rest = blocks.pop()!;
  const events: SseEvent[] = [];
  const comments: string[] = [];
  for (const block of blocks) {
    const fields = new Map<string, string>();
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) comments.push(line);
      else fields.set(line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2));
    }
    if (fields.has("data")) {
      events.push({ id: fields.get("id"), event: fields.get("event"), data: fields.get("data")! });
    }
  }
  return { events, comments, rest };
}

/** Reads a feed response until its body ends, `until` holds, or `ms` pass; then cancels. */
async function receive(
  response: Response,
  { ms = 10_000, until = () => false }: { ms?: number; until?: (r: Received) => boolean } = {},
): Promise<Received> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(resolve, ms, "timeout"));
  try {
    while (true) {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk === "timeout") return { ...parseSse(text), ended: false };
      if (chunk.done) return { ...parseSse(text), ended: true };
      text += chunk.value;
      const received = { ...parseSse(text), ended: false };
      if (until(received)) return received;
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel();
  }
}

function request(headers: HeadersInit = {}, query = ""): Request {
  return new Request(`http://feed.test/${query}`, { headers });
}

function scoresOf(events: SseEvent[]): DemoScore[] {
  return events.map((e) => JSON.parse(e.data));
}

function eventsAt(seed: number, from: number, to: number, options = {}): DemoScore[] {
  return Array.from({ length: to - from }, (_, i) => scoreEventAt(seed, from + i, options));
}

Deno.test("scoreEventAt() gives the same event for the same seed and index", () => {
  for (const index of [0, 1, 499, 500, 123_456, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
    assert.deepEqual(scoreEventAt(42, index), scoreEventAt(42, index));
  }
  const a = eventsAt(1, 0, 200);
  const b = eventsAt(2, 0, 200);
  assert.notDeepEqual(a, b);
  assert.deepEqual(eventsAt(1, 100, 200), a.slice(100));
});

Deno.test("scoreEventAt() draws well-formed events with exams progressing over time", () => {
  const events = eventsAt(7, 0, 100_000);
  const lastSent = new Map<string, number>();
  for (const [i, { exam, studentId, score }] of events.entries()) {
    assert.match(studentId, /^[A-Z][A-Za-z]+_[A-Z][A-Za-z]+\d{1,2}$/);
    assert.ok(Number.isFinite(score) && score >= 0 && score <= 1, `score ${score}`);
    const key = `${studentId} ${exam}`;
    // A first result belongs to exam 1000 + floor(i / 500); a regrade re-sends the
    // result of one of the 2,000 events before it.
    const previous = lastSent.get(key);
    if (previous === undefined) assert.equal(exam, 1000 + Math.floor(i / 500));
    else assert.ok(previous >= i - 2000, `event ${i} re-sends event ${previous}`);
    lastSent.set(key, i);
  }
  assert.equal(new Set(events.map((e) => e.exam)).size, 200);
  const scores = events.map((e) => e.score);
  const mean = scores.reduce((a, b) => a + b) / scores.length;
  assert.ok(mean > 0.6 && mean < 0.75, `mean score ${mean}`);
  assert.ok(scores.some((s) => s === 1));
  // Realistic decimals: full doubles, as the original feed sent, not a few digits.
  assert.ok(scores.filter((s) => String(s).length > 12).length > scores.length * 0.9);
});

Deno.test("scoreEventAt() gives each student of the pool its own id", () => {
  // examSize = students makes the first exam visit every student exactly once; 50,000
  // is past the 35,150 name pairs, so the number suffix must keep the ids apart.
  const options = { students: 50_000, examSize: 50_000, regradeRate: 0 };
  const ids = eventsAt(3, 0, 50_000, options).map((e) => e.studentId);
  assert.equal(new Set(ids).size, 50_000);
  assert.ok(ids.every((id) => /^[A-Z][A-Za-z]+_[A-Z][A-Za-z]+\d+$/.test(id)));
});

Deno.test("scoreEventAt() re-sends a (student, exam) at about the regrade rate", () => {
  for (const regradeRate of [0, 0.02, 0.1]) {
    const events = eventsAt(11, 0, 100_000, { regradeRate });
    const distinct = new Set(events.map((e) => `${e.studentId} ${e.exam}`)).size;
    const rate = (events.length - distinct) / events.length;
    assert.ok(Math.abs(rate - regradeRate) <= regradeRate * 0.1, `rate ${rate} for ${regradeRate}`);
  }
  // The default is about 2 %, and the students of 100,000 events come from the pool.
  const events = eventsAt(11, 0, 100_000);
  const distinct = new Set(events.map((e) => `${e.studentId} ${e.exam}`)).size;
  assert.ok(distinct < 99_000 && distinct > 97_000, `${distinct} distinct results`);
  const students = new Set(events.map((e) => e.studentId)).size;
  assert.ok(students <= 20_000 && students > 19_000, `${students} students`);
});

Deno.test("scoreEventAt() rejects options it cannot honour", () => {
  assert.throws(() => scoreEventAt(1.5, 0), RangeError);
  assert.throws(() => scoreEventAt(1, -1), RangeError);
  assert.throws(() => scoreEventAt(1, 0, { students: 0 }), RangeError);
  assert.throws(() => scoreEventAt(1, 0, { regradeRate: 1 }), RangeError);
  assert.throws(() => createDemoFeed({ rate: -1 }), RangeError);
  assert.throws(() => createDemoFeed({ total: 1.5 }), RangeError);
  assert.throws(() => createDemoFeed({ faults: { dropEvery: 0 } }), RangeError);
});

Deno.test("demo feed sends every event with its index as id, then ends at total", async () => {
  const feed = createDemoFeed({ seed: 5, rate: 0, total: 3000 });
  const response = feed(request());
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const { events, ended, rest } = await receive(response);
  assert.ok(ended);
  assert.equal(rest, "");
  assert.deepEqual(events.map((e) => e.id), events.map((_, i) => String(i)));
  assert.ok(events.every((e) => e.event === "score"));
  assert.deepEqual(scoresOf(events), eventsAt(5, 0, 3000));
});

Deno.test("demo feed resumes after Last-Event-ID with the tail of a full run", async () => {
  const feed = createDemoFeed({ seed: 9, rate: 0, total: 2000 });
  const full = await receive(feed(request()));
  const resumed = await receive(feed(request({ "last-event-id": "1234" })));
  assert.ok(resumed.ended);
  assert.deepEqual(resumed.events, full.events.slice(1235));
  // An empty id means "no id": the stream starts over.
  assert.deepEqual((await receive(feed(request({ "last-event-id": "" })))).events, full.events);
});

Deno.test("demo feed ends at once when resumed at or past its total", async () => {
  const feed = createDemoFeed({ rate: 1, total: 10 });
  for (const id of ["9", "10", "5000"]) {
    const { events, ended, comments } = await receive(feed(request({ "last-event-id": id })), {
      ms: 2000,
    });
    assert.ok(ended, `resumed after ${id}`);
    assert.deepEqual([events, comments], [[], []]);
  }
});

Deno.test("demo feed answers a bad rate, a foreign id or a POST with an error", async () => {
  const feed = createDemoFeed();
  for (
    const response of [
      feed(request({}, "?rate=fast")),
      feed(request({}, "?rate=-3")),
      feed(request({}, "?rate=")),
      feed(request({ "last-event-id": "abc" })),
      feed(request({ "last-event-id": "-1" })),
    ]
  ) {
    assert.equal(response.status, 400);
    assert.match(await response.text(), /^Cannot /);
  }
  const post = feed(new Request("http://feed.test/", { method: "POST" }));
  assert.equal(post.status, 405);
  await post.body?.cancel();
});

Deno.test("demo feed sends no more events than its rate allows", async () => {
  const feed = createDemoFeed({ rate: 20 });
  const started = performance.now();
  const { events } = await receive(feed(request()), { ms: 500 });
  const elapsed = performance.now() - started;
  // Event k is due k / rate seconds after the start: never more than that, whatever the
  // machine's load; and at least the first one at once.
  assert.ok(events.length <= Math.floor((elapsed * 20) / 1000) + 1, `${events.length} events`);
  assert.ok(events.length >= 1);
});

Deno.test("demo feed takes ?rate= over its own rate", async () => {
  // At its own rate this feed would need hours; ?rate=0 sends everything at once.
  const feed = createDemoFeed({ rate: 0.01, total: 5000 });
  const { events, ended } = await receive(feed(request({}, "?rate=0")));
  assert.ok(ended);
  assert.equal(events.length, 5000);
  const slow = await receive(createDemoFeed({ rate: 0 })(request({}, "?rate=0.01")), { ms: 300 });
  assert.equal(slow.events.length, 1);
});

Deno.test("demo feed sends a keep-alive comment when it has nothing to send", async () => {
  const feed = createDemoFeed({ rate: 0.001, keepAliveMs: 50 });
  const { events, comments } = await receive(feed(request()), {
    until: (r) => r.comments.length >= 2,
  });
  assert.equal(events.length, 1);
  assert.deepEqual(comments, [": keep-alive", ": keep-alive"]);
});

Deno.test("demo feed with dropEvery cuts each connection mid-event, and resuming loses nothing", async () => {
  const feed = createDemoFeed({ seed: 4, rate: 0, total: 1050, faults: { dropEvery: 100 } });
  const all: SseEvent[] = [];
  let lastId: string | undefined;
  for (let connection = 0; connection < 11; connection++) {
    const { events, rest, ended } = await receive(
      feed(request(lastId === undefined ? {} : { "last-event-id": lastId })),
    );
    assert.ok(ended);
    assert.equal(events.length, connection < 10 ? 100 : 50);
    // The cut-off event is the next one, not yet terminated by a blank line.
    if (connection < 10) assert.match(rest, new RegExp(`^id: ${all.length + 100}\nevent: score`));
    else assert.equal(rest, "");
    all.push(...events);
    lastId = events.at(-1)!.id;
  }
  assert.deepEqual(scoresOf(all), eventsAt(4, 0, 1050));
});

Deno.test({
  name: "demo feed leaves nothing waiting once its body is cancelled",
  ignore: Deno.permissions.querySync({ name: "run" }).state !== "granted",
  async fn() {
    // A process exits when nothing is left to wait for. The child's next event and its
    // next keep-alive are a minute away: if cancel() left that wait behind, the child
    // would outlive the 10 s deadline.
    const script = `
      import { createDemoFeed } from ${
      JSON.stringify(import.meta.resolve("../../ingest/demo_feed.ts"))
    };
      const feed = createDemoFeed({ rate: 1 / 60, keepAliveMs: 60_000 });
      const reader = feed(new Request("http://feed.test/")).body.getReader();
      await reader.read();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await reader.cancel();
      console.log("cancelled");
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      stdin: "null",
      signal: AbortSignal.timeout(10_000),
    });
    const { code, stdout, stderr } = await child.output();
    assert.equal(new TextDecoder().decode(stderr), "");
    assert.equal(new TextDecoder().decode(stdout), "cancelled\n");
    assert.equal(code, 0);
  },
});

Deno.test("demo feed runs under Deno.serve, resuming and serving clients that leave", async () => {
  const feed = createDemoFeed({ seed: 2, rate: 2 });
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, feed);
  const url = `http://127.0.0.1:${server.addr.port}/`;
  // Clients that leave mid-stream, one while the feed waits and one at full speed.
  const response = await fetch(url, { headers: { "last-event-id": "41" } });
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const { events } = await receive(response, { until: (r) => r.events.length === 1 });
  assert.deepEqual(events.map((e) => e.id), ["42"]);
  assert.deepEqual(scoresOf(events), [scoreEventAt(2, 42)]);
  const fast = await receive(await fetch(`${url}?rate=0`), {
    until: (r) => r.events.length >= 10_000,
  });
  assert.deepEqual(scoresOf(fast.events.slice(0, 100)), eventsAt(2, 0, 100));
  // The server goes on serving after they left.
  const again = await receive(await fetch(url), { until: (r) => r.events.length === 1 });
  assert.deepEqual(again.events.map((e) => e.id), ["0"]);
});

Deno.test("expectedState() keeps the last score of each (student, exam)", () => {
  const state = expectedState([
    { studentId: "b", exam: 2, score: 0.5 },
    { studentId: "a", exam: 2, score: 0.25 },
    { studentId: "b", exam: 1, score: 1 },
    { studentId: "b", exam: 2, score: 0 },
    { studentId: "é", exam: 1, score: 0.75 },
    { studentId: "z", exam: 1, score: 0.25 },
  ]);
  assert.equal(state.results, 5);
  assert.deepEqual([...state.students.keys()], ["a", "b", "z", "é"]);
  assert.deepEqual(state.students.get("b"), {
    studentId: "b",
    count: 2,
    average: 0.5,
    results: [{ exam: 1, score: 1 }, { exam: 2, score: 0 }],
  });
  assert.deepEqual(state.exams.get(1), {
    exam: 1,
    count: 3,
    average: (1 + 0.25 + 0.75) / 3,
    results: [
      { studentId: "b", score: 1 },
      { studentId: "z", score: 0.25 },
      { studentId: "é", score: 0.75 },
    ],
  });
  assert.deepEqual([...state.exams.keys()], [1, 2]);
});

Deno.test("compareUtf8() orders by UTF-8 bytes, not UTF-16 code units", () => {
  // U+FF5E is one UTF-16 unit above the surrogates of U+1F600, but fewer UTF-8 bytes.
  assert.ok(compareUtf8("\uff5e", "\u{1f600}") < 0);
  assert.ok("\uff5e" > "\u{1f600}");
  assert.ok(compareUtf8("Zoe", "adam") < 0);
  assert.ok(compareUtf8("ab", "abc") < 0);
  assert.equal(compareUtf8("x", "x"), 0);
});

Deno.test("expectedState() of the demo feed holds one result per distinct (student, exam)", () => {
  const events = eventsAt(8, 0, 20_000);
  const state = expectedState(events);
  assert.equal(state.results, new Set(events.map((e) => `${e.studentId} ${e.exam}`)).size);
  assert.equal(state.exams.size, 40);
  let fromStudents = 0;
  for (const s of state.students.values()) fromStudents += s.count;
  let fromExams = 0;
  for (const e of state.exams.values()) fromExams += e.count;
  assert.deepEqual([fromStudents, fromExams], [state.results, state.results]);
});
