// deno task bench:healthz [--events 300000] [--seconds 10] [--rate 20000]
//                         [--feed demo|oversized|gzip-bomb]
//
// /healthz's latency (one probe every 20 ms, each on a new connection, as a
// liveness probe connects) and ingest's rate, first with the API idle, then
// under the overload of issue 11: `wrk -c100` on /exams/424242?limit=10000&x=<random>
// beside `wrk -c100` on /students?limit=1000, and then the same connections on
// /healthz, which reads nothing. /stats is probed too. The feed
// is the demo feed paced at --rate, resumed after --events preloaded ones; with
// --feed oversized every 500th event is followed by one of 1.5 MB, and with
// --feed gzip-bomb the feed answers with a gzip body that inflates to 1 GiB
// of newlines, again on every reconnect. With a hostile feed, a first phase
// measures the API idle on the demo feed, the baseline of the same run.
import { createDemoFeed } from "../ingest/demo_feed.ts";
import {
  benchFlags,
  createBenchDb,
  describeMachine,
  fmt,
  ingestDemo,
  requireCommands,
  run,
  type Service,
  startService,
} from "./_harness.ts";

const { events, seconds, rate, feed: feedKind } = benchFlags({
  events: 300_000,
  seconds: 10,
  rate: 20_000,
  feed: "demo",
});
if (!["demo", "oversized", "gzip-bomb"].includes(feedKind)) {
  throw new RangeError(`Cannot parse --feed "${feedKind}": not one of demo, oversized, gzip-bomb`);
}

/** Latencies of a probe repeated every `everyMs`, each on a fresh connection. */
async function probe(url: string, everyMs: number, signal: AbortSignal) {
  const ms: number[] = [];
  const failures: string[] = [];
  while (!signal.aborted) {
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
    const start = performance.now();
    try {
      const res = await fetch(url, { client, signal: AbortSignal.timeout(10_000) });
      await res.body?.cancel();
      if (res.status === 200) ms.push(performance.now() - start);
      else failures.push(String(res.status));
    } catch (error) {
      failures.push(error instanceof Error ? error.name : String(error));
    } finally {
      client.close();
    }
    const wait = everyMs - (performance.now() - start);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return { ms, failures };
}

function quantiles({ ms, failures }: { ms: number[]; failures: string[] }): string {
  const sorted = ms.toSorted((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return `p50 ${fmt(q(0.5), 1)} ms  p99 ${fmt(q(0.99), 1)} ms  max ${fmt(sorted.at(-1)!, 1)} ms` +
    `  (${sorted.length} ok, ${failures.length} failed${
      failures.length ? `: ${[...new Set(failures)].join(", ")}` : ""
    })`;
}

const WRK_SCRIPT = (path: string, randomParam: boolean) => `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
request = function()
  return wrk.format("GET", "${path}"${randomParam ? ' .. "&x=" .. math.random()' : ""})
end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do io.write(string.format("status %d %d\\n", status, n)) end
  end
end
`;

/** wrk -t1 -c100 for `seconds` on one path; a line of what it saw. */
async function wrk(base: string, path: string, randomParam: boolean): Promise<string> {
  const script = await Deno.makeTempFile({ prefix: "scorestream_wrk_", suffix: ".lua" });
  await Deno.writeTextFile(script, WRK_SCRIPT(path, randomParam));
  try {
    const out = await run("wrk", [
      "-t1",
      "-c100",
      `-d${seconds}s`,
      "--timeout",
      "15s",
      "--latency",
      "-s",
      script,
      base,
    ]);
    const latency = (p: string) => out.match(new RegExp(`^\\s*${p}%\\s+(\\S+)\\s*$`, "m"))?.[1];
    const statuses = [...out.matchAll(/^status (\d+) (\d+)$/gm)].map(([, s, n]) => `${s}: ${n}`);
    const rps = out.match(/Requests\/sec:\s+([\d.]+)/)?.[1];
    const socket = out.match(/Socket errors: (.*)$/m)?.[1];
    return `${fmt(Number(rps))} req/s  p50 ${latency("50")}  p99 ${latency("99")}  ` +
      `statuses {${statuses.join(", ")}}${socket ? `  socket errors: ${socket}` : ""}`;
  } finally {
    await Deno.remove(script);
  }
}

/** Ingest's applied events per second over `seconds`, with /healthz and /stats probed meanwhile. */
async function phase(title: string, service: Service, load?: () => Promise<string[]>) {
  const stop = new AbortController();
  const healthz = probe(`${service.url}/healthz`, 20, stop.signal);
  const stats = probe(`${service.url}/stats`, 200, stop.signal);
  const before = await service.stats();
  const start = performance.now();
  const loadLines = load
    ? await load()
    : await new Promise<string[]>((resolve) => setTimeout(() => resolve([]), seconds * 1000));
  const after = await service.stats();
  const elapsed = (performance.now() - start) / 1000;
  stop.abort();
  const applied = (after.ingest.applied - before.ingest.applied) / elapsed;
  console.log(`\n${title}`);
  for (const line of loadLines) console.log(`  ${line}`);
  console.log(`  /healthz: ${quantiles(await healthz)}`);
  console.log(`  /stats:   ${quantiles(await stats)}`);
  console.log(
    `  ingest: ${fmt(applied)} events/s applied, received ${
      fmt(after.ingest.received - before.ingest.received)
    }, rejected ${
      fmt(after.ingest.rejected - before.ingest.rejected)
    }, receive->commit p99 ${after.ingest.lagMs} ms`,
  );
  return applied;
}

const encoder = new TextEncoder();

/** 1 GiB of newlines, gzipped once (about 1 MB). */
async function gzipBomb(): Promise<Uint8Array<ArrayBuffer>> {
  const chunk = new Uint8Array(1 << 20).fill(10);
  let left = 1024;
  const source = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      if (left-- > 0) controller.enqueue(chunk);
      else controller.close();
    },
  });
  return new Uint8Array(
    await new Response(source.pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
}

/**
 * The demo feed on a loopback port, until `turn()` makes it the hostile variant
 * `kind`: the connections open then are ended, so the service reconnects to it.
 */
async function serveHostileFeed(kind: string) {
  const demo = createDemoFeed({ seed: 1, rate });
  const bomb = kind === "gzip-bomb" ? await gzipBomb() : undefined;
  const big = encoder.encode(`event: score\ndata: {"pad": "${"x".repeat(1_500_000)}"}\n\n`);
  let hostile = false;
  const open = new Set<TransformStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (hostile && bomb) {
      return new Response(bomb, {
        headers: { "content-type": "text/event-stream", "content-encoding": "gzip" },
      });
    }
    const response = demo(request);
    const oversized = hostile && kind === "oversized";
    let seen = 0;
    let controller: TransformStreamDefaultController<Uint8Array>;
    const body = response.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        start: (c) => void open.add(controller = c),
        transform(chunk, controller) {
          controller.enqueue(chunk);
          if (!oversized) return;
          // A chunk ends at an event's end; count events by their blank lines.
          for (let i = 1; i < chunk.length; i++) {
            if (chunk[i] === 10 && chunk[i - 1] === 10 && ++seen % 500 === 0) {
              controller.enqueue(big);
            }
          }
        },
        flush: () => void open.delete(controller),
        cancel: () => void open.delete(controller),
      }),
    );
    return new Response(body, { headers: response.headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/scores`,
    turn() {
      hostile = true;
      for (const controller of open) controller.terminate();
      open.clear();
    },
    close: () => server.shutdown(),
  };
}

await requireCommands("wrk");
console.log(await describeMachine("bench:healthz"));
const db = await createBenchDb("scorestream_bench_healthz");
try {
  const loaded = await ingestDemo({ databaseUrl: db.url, events });
  console.log(
    `preloaded ${fmt(loaded.events)} events at ${fmt(loaded.events / loaded.seconds)} events/s; ` +
      `then the feed (${feedKind}) resumes paced at ${fmt(rate)} events/s`,
  );
  const feed = await serveHostileFeed(feedKind!);
  const service = await startService({ DATABASE_URL: db.url, SCORES_URL: feed.url });
  try {
    await service.waitFor((s) => s.ingest.state === "open" || s.ingest.received > 0, 60_000);
    // Let ingest settle into the feed's pace first.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    if (feedKind !== "demo") {
      await phase(`API idle, the demo feed (${seconds} s): the baseline:`, service);
      feed.turn();
    }
    const idle = await phase(`API idle (${seconds} s), the ${feedKind} feed:`, service);
    const loaded = await phase(
      `API overloaded (${seconds} s): wrk -t1 -c100 on each path at once:`,
      service,
      async () => {
        const [exams, students] = await Promise.all([
          wrk(service.url, "/exams/424242?limit=10000", true),
          wrk(service.url, "/students?limit=1000", false),
        ]);
        return [
          `/exams/424242?limit=10000&x=<random>: ${exams}`,
          `/students?limit=1000:                ${students}`,
        ];
      },
    );
    // The same connections on a route that reads nothing: what HTTP alone costs ingest.
    const http = await phase(
      `HTTP flood without reads (${seconds} s): wrk -t1 -c100 twice on /healthz:`,
      service,
      async () => {
        const runs = await Promise.all([
          wrk(service.url, "/healthz?", false),
          wrk(service.url, "/healthz?", false),
        ]);
        return runs.map((line) => `/healthz: ${line}`);
      },
    );
    await phase(`API idle again (${seconds} s):`, service);
    if (idle > 0) {
      console.log(
        `\ningest, as a share of its idle rate: ${
          (loaded / idle).toFixed(2)
        } under the overload, ` +
          `${(http / idle).toFixed(2)} under the flood without reads`,
      );
    }
  } finally {
    await service.stop();
    await feed.close();
  }
} finally {
  await db.drop();
}
