// deno task bench:api [--duration 8] [--connections 32] [--events 1000000]
//
// With the demo feed's first N events stored through the real ingest path, wrk
// drives /students/{id} and /exams/{exam}, each on one hot key and spread over
// many keys, next to a Hono hello-world measured the same way in the same run;
// then again while the service ingests the feed at 20,000 events/s.
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

async function startHello(): Promise<{ url: string; stop(): Promise<void> }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const child = new Deno.Command("deno", {
    args: ["run", "--allow-net=127.0.0.1", "--allow-env=PORT", "bench/_hello.ts"],
    cwd: new URL("../", import.meta.url),
    env: { PORT: String(port) },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await until("the hello-world to answer", async () => {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      return response.ok;
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

const line = (name: string, r: WrkResult, hello: WrkResult, target?: number) =>
  `  ${name.padEnd(30)} ${fmt(r.rps).padStart(8)} req/s  p50 ${fmt(r.p50, 2).padStart(6)} ms  p99 ${
    fmt(r.p99, 2).padStart(7)
  } ms  errors ${r.errors}/${fmt(r.requests)}  ${(r.rps / hello.rps).toFixed(2)} of hello${
    target === undefined ? "" : `  (target >= ${target})`
  }`;

async function measure(
  title: string,
  service: Service,
  keys: { students: string[]; exams: number[] },
) {
  const hello = await startHello();
  try {
    const results: string[] = [];
    const h = await wrk(hello.url, ["/"]);
    results.push(line("hello-world (baseline)", h, h));
    const studentPaths = keys.students.map((s) => `/students/${encodeURIComponent(s)}`);
    const examPaths = keys.exams.map((e) => `/exams/${e}`);
    results.push(line("/students/{id} hot key", await wrk(service.url, [studentPaths[0]]), h, 0.5));
    results.push(
      line(
        `/students/{id} ${studentPaths.length} keys`,
        await wrk(service.url, studentPaths),
        h,
        0.5,
      ),
    );
    results.push(line("/exams/{exam} hot key", await wrk(service.url, [examPaths[0]]), h, 0.15));
    results.push(
      line(`/exams/{exam} ${examPaths.length} keys`, await wrk(service.url, examPaths), h, 0.15),
    );
    console.log(`\n${title}\n${results.join("\n")}`);
  } finally {
    await hello.stop();
  }
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
      `  ingest meanwhile: ${
        fmt(rate)
      } events/s applied, receive->commit p99 ${after.ingest.lagMs} ms`,
    );
  } finally {
    await busy.stop();
    await feed.close();
  }
} finally {
  await db.drop();
}
