// deno task bench:freshness [--rate 20000] [--duration 20] [--seed 1]
//
// The demo feed paced at --rate events/s (served live from this process) into
// the real service. A prober takes the event most recently handed to the feed's
// socket, and polls GET /students/{studentId}?after={exam - 1}&limit=1 until the
// API answers with that event's score: freshness is the time from the feed
// sending the event to the API serving it. One probe at a time, back to back.
// Baselines from the same run: the latency of one such request once the answer
// is there (the probe's resolution), and the service's own receive->commit p99.
import { scoreEventAt } from "../ingest/demo_feed.ts";
import { demoFeed, serveFeed } from "../tests/_feed_server.ts";
import { benchFlags, createBenchDb, describeMachine, fmt, startService } from "./_harness.ts";

const { rate, duration, seed } = benchFlags({ rate: 20_000, duration: 20, seed: 1 });
const durationMs = duration * 1000;

console.log(await describeMachine("bench:freshness"));
const db = await createBenchDb("scorestream_bench_freshness");
const decoder = new TextDecoder();
let latest: { index: number; at: number } | undefined;
// The last event sent for each (studentId, exam): a regrade sent after the probed
// event replaces its score, and then the regrade's score is the answer.
const lastOfKey = new Map<string, number>();
const feed = serveFeed(demoFeed({ seed, rate }), {
  onSent(chunk, at) {
    const text = decoder.decode(chunk);
    // A block is complete only once its blank line is sent.
    for (const m of text.matchAll(/^id: (\d+)\nevent: score\ndata: (.*)\n\n/gm)) {
      const index = Number(m[1]);
      const { studentId, exam } = JSON.parse(m[2]);
      lastOfKey.set(`${studentId}\0${exam}`, index);
      latest = { index, at };
    }
  },
});
const service = await startService({ DATABASE_URL: db.url, SCORES_URL: feed.url });

/** The writers' commit latency histogram from /metrics: [upper bound, cumulative count]. */
async function commitLatencies(): Promise<[string, number][]> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  return [
    ...text.matchAll(/^scorestream_writer_commit_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm),
  ]
    .map((m) => [m[1], Number(m[2])]);
}
try {
  // Warm up: connections, plans, the first exams.
  const warm = await service.waitFor((s) => s.ingest.applied >= rate * 2, 600_000, 20);
  const warmAt = performance.now();
  const commitsBefore = await commitLatencies();
  const samples: number[] = [];
  const requestMs: number[] = [];
  let polls = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    const probe = latest!;
    const event = scoreEventAt(seed, probe.index);
    const path = `/students/${encodeURIComponent(event.studentId)}?after=${event.exam - 1}&limit=1`;
    while (true) {
      const sent = performance.now();
      const response = await fetch(`${service.url}${path}`);
      polls++;
      const body = response.ok ? await response.json() : (await response.body?.cancel(), null);
      const at = performance.now();
      const first = body?.results?.[0];
      const last = lastOfKey.get(`${event.studentId}\0${event.exam}`)!;
      const expected = last === probe.index ? event.score : scoreEventAt(seed, last).score;
      if (first?.exam === event.exam && (first.score === event.score || first.score === expected)) {
        samples.push(at - probe.at);
        requestMs.push(at - sent);
        break;
      }
      if (at - probe.at > 10_000) throw new Error(`event ${probe.index} not served in 10 s`);
    }
  }
  const stats = await service.stats();
  const commits = (await commitLatencies()).map((
    [le, n],
    i,
  ): [string, number] => [le, n - commitsBefore[i][1]]);
  const total = commits.at(-1)![1];
  const applied = stats.ingest.applied - warm.ingest.applied;
  const seconds = (performance.now() - warmAt) / 1000;
  const q = (xs: number[], p: number) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  };
  console.log(`
feed -> queryable through GET /students/{id}, ${fmt(samples.length)} probes (${
    fmt(polls)
  } requests), ingest meanwhile ${fmt(applied / seconds)} events/s:
  p50 ${fmt(q(samples, 0.5), 1)} ms  p90 ${fmt(q(samples, 0.9), 1)} ms  p99 ${
    fmt(q(samples, 0.99), 1)
  } ms  max ${fmt(Math.max(...samples), 1)} ms   target p99 <= 50 ms
baselines, same run:
  one GET of the answer: p50 ${fmt(q(requestMs, 0.5), 2)} ms  p99 ${fmt(q(requestMs, 0.99), 2)} ms
  service receive -> commit p99 (lagMs of /stats): ${fmt(stats.ingest.lagMs ?? NaN, 1)} ms
  writer commits (batch handed over -> committed), ${fmt(total)} in all: ${
    commits.filter(([le]) => le !== "+Inf").map(([le, n]) =>
      `<= ${Number(le) * 1000} ms ${fmt((100 * n) / total, 1)}%`
    ).join(", ")
  }`);
} finally {
  await service.stop();
  await feed.close();
  await db.drop();
}
