// deno task bench:live [--events 300000] [--times 3] [--baseline 2d07744] [--seconds 15]
//
// What the change stream (GET /events) costs, measured against its targets in one run:
// 1. ingest events/s at full speed (the demo feed pre-rendered, as bench:ingest) of the
//    build before the stream (--baseline, checked out with git worktree) and of this
//    build, both without subscribers; then this build with --students subscribers
//    filtered to one student each plus one unfiltered, all connected before the feed
//    starts. Runs alternate, --times each; medians are compared.
// 2. delivery delay: the feed paced at 5,000 and then 20,000 events/s for --seconds,
//    with the same subscribers; for each event the unfiltered subscriber receives, the
//    time from the feed handing the chunk that held it to its socket to its receipt.
// 3. memory: a full-speed run with one subscriber that never reads (a 4 KiB receive
//    buffer), its peak RSS beside the run without subscribers.
import { createParser } from "eventsource-parser";
import { scoreEventAt } from "../ingest/demo_feed.ts";
import { STALLED_SUBSCRIBER } from "../tests/_events_client.ts";
import {
  demoFeed,
  type FeedAnswer,
  prerenderedDemoFeed,
  serveFeed,
} from "../tests/_feed_server.ts";
import { threadCpuSeconds } from "../tests/_service.ts";
import {
  benchFlags,
  cpuSeconds,
  createBenchDb,
  describeMachine,
  fmt,
  startService,
} from "./_harness.ts";

const flags = benchFlags({
  only: "ingest,delivery,memory",
  "students-only": false,
  events: 300_000,
  times: 3,
  baseline: "2d07744",
  seconds: 15,
  students: 200,
});
const { events, times, seconds, students } = flags;
const seed = 1;
const root = new URL("../", import.meta.url);
/** Delivery delays of events sent in the first seconds (start-up, compilation) are left out. */
const WARM_UP_SECONDS = 2;

console.log(await describeMachine("bench:live"));
const baseline = await checkout(flags.baseline);
const firstStudents = [
  ...new Set(Array.from({ length: 20_000 }, (_, i) => scoreEventAt(seed, i).studentId)),
].slice(0, students);

const only = new Set(flags.only.split(","));
try {
  if (only.has("ingest")) await throughput();
  if (only.has("delivery")) await deliveryDelays();
  if (only.has("memory")) await memory();
} finally {
  await new Deno.Command("git", {
    args: ["-C", root.pathname, "worktree", "remove", "--force", baseline.pathname],
  }).output();
}

async function throughput() {
  const runs: Record<"baseline" | "stream" | "subscribed", Run[]> = {
    baseline: [],
    stream: [],
    subscribed: [],
  };
  for (let i = 0; i < times; i++) {
    runs.baseline.push(await ingest({ from: baseline }));
    runs.stream.push(await ingest({ from: root }));
    runs.subscribed.push(await ingest({ from: root, subscribers: true }));
  }
  const rate = (r: Run) => r.events / r.seconds;
  const median = (rs: Run[]) => {
    const sorted = rs.map(rate).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  const [b, s, u] = [median(runs.baseline), median(runs.stream), median(runs.subscribed)];
  console.log(`
1. ingest at full speed, ${fmt(events)} events, ${times} runs each, alternating (events/s):
  ${flags.baseline} (no change stream):  ${
    runs.baseline.map((r) => fmt(rate(r))).join(" / ")
  }   median ${fmt(b)}
  this build, 0 subscribers:   ${runs.stream.map((r) => fmt(rate(r))).join(" / ")}   median ${
    fmt(s)
  }
  this build, ${students} per-student + 1 unfiltered subscribers:
                               ${runs.subscribed.map((r) => fmt(rate(r))).join(" / ")}   median ${
    fmt(u)
  }
  0 subscribers / baseline: ${(s / b).toFixed(3)}   target >= 0.95
  with subscribers / 0 subscribers: ${(u / s).toFixed(3)}   target >= 0.90
  the unfiltered subscriber received ${
    runs.subscribed.map((r) => fmt(r.received ?? 0)).join(" / ")
  } result events (changes committed: ${
    runs.subscribed.map((r) => fmt(r.changes ?? 0)).join(" / ")
  }); cut off as slow (and resumed): ${
    runs.subscribed.map((r) => `${r.slow} (${r.resumes})`).join(" / ")
  }
  CPU s per run (main thread / whole service / Postgres (of it the stream's) / this benchmark):
${
    Object.entries(runs).map(([name, rs]) =>
      `    ${name}: ${
        rs.map(({ cpu: c }) =>
          `${fmt(c.main, 2)} / ${fmt(c.service, 2)} / ${fmt(c.postgres, 2)} (${
            fmt(c.stream, 2)
          }) / ${fmt(c.bench, 2)}`
        ).join("; ")
      }`
    ).join("\n")
  }
  peak RSS: baseline ${
    runs.baseline.map((r) => fmt(r.peakRss / 2 ** 20, 1)).join(" / ")
  } MB, 0 subscribers ${
    runs.stream.map((r) => fmt(r.peakRss / 2 ** 20, 1)).join(" / ")
  } MB, subscribed ${runs.subscribed.map((r) => fmt(r.peakRss / 2 ** 20, 1)).join(" / ")} MB`);
}

async function deliveryDelays() {
  console.log(`\n2. delivery delay (feed hands the event's chunk to its socket -> the unfiltered
   subscriber receives it), with ${students} per-student subscribers beside it; events of the
   first ${WARM_UP_SECONDS} s left out:`);
  for (const [paced, target] of [[5_000, 100], [20_000, 250]]) {
    const d = await delivery(paced);
    console.log(
      `  ${fmt(paced)} events/s for ${seconds} s: ${fmt(d.samples)} events received, p50 ${
        fmt(d.p50, 1)
      } ms, p99 ${fmt(d.p99, 1)} ms, max ${fmt(d.max, 1)} ms   target p99 <= ${target} ms` +
        `   (/stats lagMs at the end: ${d.lagMs === null ? "n/a" : fmt(d.lagMs, 1)} ms)`,
    );
  }
}

async function memory() {
  const none = await ingest({ from: root });
  const stalled = await ingest({ from: root, stalled: true });
  console.log(`
3. a subscriber that never reads (EVENTS_BUFFER_BYTES default), ${fmt(events)} events at full speed:
  peak RSS ${fmt(stalled.peakRss / 2 ** 20, 1)} MB; without it, the run before: ${
    fmt(none.peakRss / 2 ** 20, 1)
  } MB; cut off as slow: ${stalled.slow}; events/s ${fmt(none.events / none.seconds)} without, ${
    fmt(stalled.events / stalled.seconds)
  } with`);
}

interface Run {
  events: number;
  /** CPU seconds from the feed's release to the last commit. */
  cpu: { main: number; service: number; postgres: number; stream: number; bench: number };
  seconds: number;
  peakRss: number;
  slow: number;
  received?: number;
  resumes?: number;
  changes?: number;
}

/** A checkout of `rev` beside this one (git worktree), for the baseline build. */
async function checkout(rev: string): Promise<URL> {
  const dir = await Deno.makeTempDir({ prefix: `scorestream_baseline_${rev}_` });
  await Deno.remove(dir);
  const { success, stderr } = await new Deno.Command("git", {
    args: ["-C", root.pathname, "worktree", "add", "--detach", dir, rev],
    stdout: "null",
  }).output();
  if (!success) throw new Error(`git worktree add ${rev}: ${new TextDecoder().decode(stderr)}`);
  return new URL(`file://${dir}/`);
}

/** A feed that answers nothing until `release()`. */
function gated(answer: FeedAnswer, onSent?: (chunk: Uint8Array, at: number) => void) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const feed = serveFeed(async (request, n, closing) => {
    await gate;
    return answer(request, n, closing);
  }, { timed: true, onSent });
  return { feed, release };
}

/** Opens the per-student subscribers, each draining its stream; returns a closer. */
async function perStudent(url: string) {
  const abort = new AbortController();
  for (const id of firstStudents) {
    const response = await fetch(`${url}/events?studentId=${encodeURIComponent(id)}`, {
      signal: abort.signal,
    });
    response.body!.pipeTo(new WritableStream()).catch(() => {});
  }
  return () => abort.abort();
}

/**
 * An unfiltered subscriber that only counts the result events it gets, and,
 * cut off as slow, resumes with the last id it saw, as EventSource would.
 */
async function counting(url: string) {
  const abort = new AbortController();
  let received = 0;
  let resumes = 0;
  let lastId: string | undefined;
  const open = () =>
    fetch(`${url}/events`, {
      headers: lastId ? { "Last-Event-ID": lastId } : {},
      signal: abort.signal,
    });
  let response = await open();
  (async () => {
    const decoder = new TextDecoder();
    while (!abort.signal.aborted) {
      // What may be the start of a marker cut by a chunk's end: shorter than one.
      let tail = "";
      try {
        for await (const chunk of response.body!) {
          const text = tail + decoder.decode(chunk, { stream: true });
          received += text.split("event: result\n").length - 1;
          const at = text.lastIndexOf("\nid: ");
          const end = text.indexOf("\n", at + 5);
          if (at >= 0 && end >= 0) lastId = text.slice(at + 5, end);
          tail = text.slice(-13);
        }
      } catch { /* cut off, or closed */ }
      if (abort.signal.aborted) return;
      resumes++;
      await new Promise((resolve) => setTimeout(resolve, 100));
      response = await open().catch(() => response);
    }
  })();
  return {
    received: () => received,
    resumes: () => resumes,
    close: () => abort.abort(),
  };
}

/**
 * CPU seconds so far: the service's main thread (HTTP, the hub) and all of it,
 * its Postgres backends (`stream`: the change stream's own), and this process.
 */
async function cpuNow(pid: number, url: string) {
  const sql = (await import("postgres")).default(url, { max: 1, onnotice: () => {} });
  const backends = await sql<{ pid: number; app: string }[]>`
    SELECT pid, application_name AS app FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  await sql.end();
  let postgres = 0;
  let stream = 0;
  for (const b of backends) {
    const seconds = await cpuSeconds(b.pid).catch(() => 0);
    postgres += seconds;
    if (b.app === "scorestream-events") stream += seconds;
  }
  return {
    main: (await threadCpuSeconds(pid)).get("main") ?? 0,
    service: await cpuSeconds(pid),
    postgres,
    stream,
    bench: await cpuSeconds(Deno.pid),
  };
}

async function ready(url: string) {
  for (;;) {
    const response = await fetch(`${url}/readyz`).catch(() => undefined);
    await response?.body?.cancel();
    if (response?.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function ingest(
  { from, subscribers = false, stalled = false }: {
    from: URL;
    subscribers?: boolean;
    stalled?: boolean;
  },
): Promise<Run> {
  const db = await createBenchDb("scorestream_bench_live");
  const { feed, release } = gated(await prerenderedDemoFeed({ seed, rate: 0, total: events }));
  const service = await startService({ DATABASE_URL: db.url, SCORES_URL: feed.url }, { from });
  let closeStudents: (() => void) | undefined;
  let unfiltered: Awaited<ReturnType<typeof counting>> | undefined;
  let stall: Deno.ChildProcess | undefined;
  try {
    await ready(service.url);
    if (subscribers) {
      closeStudents = await perStudent(service.url);
      if (!flags["students-only"]) unfiltered = await counting(service.url);
    }
    if (stalled) {
      stall = new Deno.Command("python3", {
        args: ["-c", STALLED_SUBSCRIBER, new URL(service.url).port],
        stdin: "piped",
      }).spawn();
      await service.waitFor((s) => (s as unknown as EventsStats).events?.subscribers === 1);
    }
    if (subscribers) {
      await service.waitFor((s) =>
        (s as unknown as EventsStats).events?.subscribers ===
          students + (flags["students-only"] ? 0 : 1)
      );
    }
    const cpuBefore = await cpuNow(service.pid, db.url);
    release();
    await service.waitFor((s) => s.ingest.applied >= events, 600_000, 20);
    const at = performance.now();
    const peakRss = await service.peakRss();
    const cpuAfter = await cpuNow(service.pid, db.url);
    let changes: number | undefined;
    if (unfiltered) {
      // Every change reaches it: the log's count, once it stops growing.
      const sql = (await import("postgres")).default(db.url, { max: 1, onnotice: () => {} });
      const [{ n }] = await sql<{ n: number }[]>`
        SELECT coalesce(sum(n), 0)::int8 AS n FROM result_changes`;
      await sql.end();
      changes = Number(n);
      const deadline = performance.now() + 30_000;
      while (unfiltered.received() < changes && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const stats = await service.stats() as unknown as EventsStats;
    const cpu = Object.fromEntries(
      Object.entries(cpuAfter).map(([k, v]) => [k, v - cpuBefore[k as keyof typeof cpuBefore]]),
    ) as typeof cpuAfter;
    return {
      events,
      seconds: (at - feed.firstByteAt()!) / 1000,
      peakRss,
      cpu,
      slow: stats.events?.slow ?? 0,
      received: unfiltered?.received(),
      resumes: unfiltered?.resumes(),
      changes,
    };
  } finally {
    unfiltered?.close();
    closeStudents?.();
    if (stall) {
      stall.kill();
      await stall.status;
    }
    await service.stop();
    await feed.close();
    await db.drop();
  }
}

/** The delivery delay at a paced rate, for every event the unfiltered subscriber gets. */
async function delivery(rate: number) {
  const total = rate * seconds;
  const index = new Map<string, number>();
  for (let i = 0; i < total; i++) {
    const { studentId, exam, score } = scoreEventAt(seed, i);
    index.set(`${studentId}:${exam}:${score}`, i);
  }
  const sentAt = new Float64Array(total);
  const decoder = new TextDecoder();
  const { feed, release } = gated(demoFeed({ seed, rate, total }), (chunk, at) => {
    for (const [, id] of decoder.decode(chunk).matchAll(/^id: (\d+)$/gm)) sentAt[Number(id)] = at;
  });
  const db = await createBenchDb("scorestream_bench_live");
  const service = await startService({ DATABASE_URL: db.url, SCORES_URL: feed.url });
  const delays: number[] = [];
  const abort = new AbortController();
  let closeStudents: (() => void) | undefined;
  try {
    await ready(service.url);
    closeStudents = await perStudent(service.url);
    const response = await fetch(`${service.url}/events`, { signal: abort.signal });
    const parser = createParser({
      onEvent({ event, data }) {
        if (event !== "result") return;
        const at = performance.now();
        const { studentId, exam, score } = JSON.parse(data);
        const i = index.get(`${studentId}:${exam}:${score}`);
        // The first seconds (start-up, compilation) are left out: steady state.
        if (i !== undefined && sentAt[i] > 0 && i >= WARM_UP_SECONDS * rate) {
          delays.push(at - sentAt[i]);
        }
      },
    });
    const reading = (async () => {
      try {
        for await (const text of response.body!.pipeThrough(new TextDecoderStream())) {
          parser.feed(text);
        }
      } catch { /* closed */ }
    })();
    release();
    const stats = await service.waitFor((s) => s.ingest.applied >= total, 600_000, 200);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    abort.abort();
    await reading;
    delays.sort((a, b) => a - b);
    const q = (p: number) => delays[Math.min(delays.length - 1, Math.floor(delays.length * p))];
    return {
      samples: delays.length,
      p50: q(0.5),
      p99: q(0.99),
      max: delays.at(-1)!,
      lagMs: stats.ingest.lagMs,
    };
  } finally {
    abort.abort();
    closeStudents?.();
    await service.stop();
    await feed.close();
    await db.drop();
  }
}

interface EventsStats {
  events?: { subscribers: number; slow: number };
}
