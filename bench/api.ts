// deno task bench:api [--duration 8] [--connections 32] [--events 1000000]
//
// With the demo feed's first N events stored through the real ingest path, wrk
// drives /students/{id} and /exams/{exam}, each on one hot key and spread over
// many keys, each beside its limit: a raw Deno.serve answering the very same
// responses (status, headers, bytes, captured from the service) from a Map,
// measured the same way in the same run (a Hono hello-world is printed for
// reference); then again while the service ingests the feed at 20,000 events/s.
import postgres from "postgres";
import {
  benchFlags,
  createBenchDb,
  describeMachine,
  fmt,
  ingestDemo,
  requireCommands,
  runWrk,
  type Service,
  startService,
  type WrkResult,
} from "./_harness.ts";
import { demoFeed, serveFeed } from "../tests/_feed_server.ts";
import { until } from "../tests/_wait.ts";
import type { Captured } from "./_same_bytes.ts";

const { duration, connections, events, keys: keyCount } = benchFlags({
  duration: 8,
  connections: 32,
  events: 1_000_000,
  keys: 2000,
});

/** wrk, one thread (the other core serves), with a Lua script spreading keys over `paths`. */
async function wrk(base: string, paths: string[]): Promise<WrkResult> {
  const script = await Deno.makeTempFile({ prefix: "scorestream_wrk_", suffix: ".lua" });
  await Deno.writeTextFile(
    script,
    `local paths = {${paths.map((p) => JSON.stringify(p)).join(",")}}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
`,
  );
  try {
    return await runWrk(base, { threads: 1, connections, seconds: duration, script });
  } finally {
    await Deno.remove(script);
  }
}

/** A baseline server, `bench/<script>`, on a free port; `env` besides PORT. */
async function startBaseline(
  script: string,
  env: Record<string, string> = {},
): Promise<{ url: string; stop(): Promise<void> }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const child = new Deno.Command("deno", {
    args: ["run", "--allow-net=127.0.0.1", "--allow-env", "--allow-read", `bench/${script}`],
    cwd: new URL("../", import.meta.url),
    env: { ...env, PORT: String(port) },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await until(`bench/${script} to answer`, async () => {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      return true;
    } catch {
      return undefined; // not listening yet
    }
  }, 10_000);
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Headers the raw server writes itself (framing, date) rather than replaying. */
const FRAMING = new Set(["date", "content-length", "transfer-encoding", "connection"]);

/**
 * Fetches `path` as wrk asks for it (HTTP/1.1, no Accept-Encoding, which
 * `fetch` would add) and keeps the status, headers and body bytes.
 */
async function capture(base: string, path: string): Promise<Captured> {
  const { hostname, port } = new URL(base);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await conn.write(
    new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`,
    ),
  );
  const bytes = new Uint8Array(await new Response(conn.readable).arrayBuffer());
  const split = bytes.findIndex((_, i) =>
    bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10
  );
  const [statusLine, ...lines] = new TextDecoder().decode(bytes.subarray(0, split)).split("\r\n");
  const headers = lines.map((l) => {
    const colon = l.indexOf(":");
    return [l.slice(0, colon).toLowerCase(), l.slice(colon + 1).trim()] as [string, string];
  });
  let body: Uint8Array = bytes.subarray(split + 4);
  if (headers.some(([k, v]) => k === "transfer-encoding" && v === "chunked")) body = dechunk(body);
  return {
    path,
    status: Number(statusLine.split(" ")[1]),
    headers: headers.filter(([k]) => !FRAMING.has(k)),
    body: body.toBase64(),
  };
}

/** The payload of a chunked body. */
function dechunk(chunked: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const eol = chunked.indexOf(13, at);
    const size = parseInt(new TextDecoder().decode(chunked.subarray(at, eol)), 16);
    if (!size) break;
    parts.push(chunked.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  const payload = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (payload.set(p, offset), offset + p.length), 0);
  return payload;
}

/** The raw limit for `paths`: their responses, captured from `service`, replayed from a Map. */
async function startSameBytes(service: Service, paths: string[]) {
  const responses: Captured[] = [];
  for (const path of paths) {
    const r = await capture(service.url, path);
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}, not 200`);
    responses.push(r);
  }
  const file = await Deno.makeTempFile({ prefix: "scorestream_same_bytes_", suffix: ".json" });
  await Deno.writeTextFile(file, JSON.stringify(responses));
  const server = await startBaseline("_same_bytes.ts", { RESPONSES: file });
  return {
    url: server.url,
    async stop() {
      await server.stop();
      await Deno.remove(file);
    },
  };
}

const line = (name: string, r: WrkResult, versus?: { name: string; r: WrkResult }) =>
  `  ${name.padEnd(44)} ${fmt(r.rps).padStart(8)} req/s  p50 ${fmt(r.p50, 2).padStart(6)} ms  p99 ${
    fmt(r.p99, 2).padStart(7)
  } ms  errors ${r.errors}/${fmt(r.requests)}${
    versus ? `  ${(r.rps / versus.r.rps).toFixed(2)} of ${versus.name}` : ""
  }`;

/**
 * Each path set on the service, then on the raw limit answering the same
 * bytes: the ratio of their rates (target >= 0.8) and their p99s side by side.
 */
async function measure(
  title: string,
  service: Service,
  keys: { students: string[]; exams: number[] },
) {
  const results: string[] = [];
  const hello = await startBaseline("_hello.ts");
  let h: WrkResult;
  try {
    h = await wrk(hello.url, ["/"]);
  } finally {
    await hello.stop();
  }
  results.push(line("Hono hello-world (reference)", h));
  const studentPaths = keys.students.map((s) => `/students/${encodeURIComponent(s)}`);
  const examPaths = keys.exams.map((e) => `/exams/${e}`);
  const sets: [string, string[], number][] = [
    ["/students/{id} hot key", studentPaths.slice(0, 1), 1],
    [`/students/{id} ${studentPaths.length} keys`, studentPaths, 1],
    ["/exams/{exam} hot key", examPaths.slice(0, 1), 2],
    [`/exams/{exam} ${examPaths.length} keys`, examPaths, 2],
  ];
  for (const [name, paths, p99Factor] of sets) {
    const limit = await startSameBytes(service, paths);
    let raw: WrkResult;
    try {
      raw = await wrk(limit.url, paths);
    } finally {
      await limit.stop();
    }
    const ours = await wrk(service.url, paths);
    results.push(line(`${name}, same-bytes limit`, raw));
    results.push(
      line(name, ours, { name: "the limit", r: raw }) +
        `  (target >= 0.80${
          p99Factor > 1 ? `, p99 <= ${p99Factor}x ${fmt(raw.p99 * p99Factor, 2)} ms` : ""
        }); ${(ours.rps / h.rps).toFixed(2)} of hello`,
    );
  }
  console.log(`\n${title}\n${results.join("\n")}`);
}

await requireCommands("wrk");
console.log(await describeMachine("bench:api"));
console.log(`wrk -t1 -c${connections} -d${duration}s --latency, keys in round robin`);
const db = await createBenchDb("scorestream_bench_api");
try {
  const loaded = await ingestDemo({ databaseUrl: db.url, events });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  const [{ results }] = await sql<{ results: string }[]>`SELECT count(*) AS results FROM results`;
  // Keys spread evenly over the whole range, not the first few.
  const students = (await sql<{ name: string }[]>`
    SELECT name FROM students ORDER BY md5(name) LIMIT ${keyCount}`).map((r) => r.name);
  const exams = (await sql<{ exam: number }[]>`
    SELECT DISTINCT exam FROM exam_totals ORDER BY exam`).map((r) => r.exam);
  const [{ perExam }] = await sql<{ perExam: string }[]>`
    SELECT round(avg(c)) AS "perExam" FROM (SELECT sum(count) AS c FROM exam_totals GROUP BY exam) x`;
  await sql.end();
  console.log(
    `stored: ${fmt(Number(results))} results from ${fmt(loaded.events)} events ` +
      `(ingested at ${fmt(loaded.events / loaded.seconds)} events/s), ~${perExam} results per exam`,
  );
  const keys = { students, exams: exams.slice(0, keyCount) };

  const idle = await startService({ DATABASE_URL: db.url, ROLE: "api" });
  try {
    await measure("API only (ROLE=api):", idle, keys);
  } finally {
    await idle.stop();
  }

  // The same service resumes the same feed after event N - 1, paced at 20,000/s.
  const feed = serveFeed(demoFeed({ seed: 1, rate: 20_000 }));
  const busy = await startService({ DATABASE_URL: db.url, SCORES_URL: feed.url });
  try {
    const before = await busy.waitFor((s) => s.ingest.applied > 0, 600_000, 20);
    const beforeAt = performance.now();
    await measure("while ingesting at 20,000 events/s (ROLE=all):", busy, keys);
    const after = await busy.stats();
    const rate = (after.ingest.applied - before.ingest.applied) /
      ((performance.now() - beforeAt) / 1000);
    console.log(
      `  ingest meanwhile: ${fmt(rate)} events/s applied, receive->commit p99 ${
        fmt(after.ingest.lagMs ?? NaN)
      } ms`,
    );
  } finally {
    await busy.stop();
    await feed.close();
  }
} finally {
  await db.drop();
}
