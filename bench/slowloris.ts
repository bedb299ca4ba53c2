// deno task bench:slowloris [--attackers 2000,5000] [--seconds 10] [--hold 60] [--drip 3]
//                            [--proxy none|nginx] [--flood-limit 1024]
//
// Healthy requests against the real service (ROLE=api on a fresh Postgres
// database) while attackers hold connections open, in one run: first with no
// attackers (the baseline), then with N idle TCP connections (connected, never
// a byte sent), then with N slowloris connections (a partial request header,
// one more byte every --drip seconds, never finished), and the baseline again.
// Healthy load: wrk on keep-alive connections for /students/{id} (random
// students) and /healthz, and beside it a probe that opens a new connection for
// each /healthz, since a flood of connections is felt first by new clients.
// Each attack lasts at least --hold seconds, to see whether the server closes
// the connections itself. With --proxy nginx, clients and attackers go through
// nginx configured as README recommends.
//
// Last, past the descriptor limit: a second service under `ulimit -n
// --flood-limit` gets 1.5 times as many idle connections; the report says
// whether Deno.serve's accept loop died, whether new connections were served
// meanwhile and how soon after the flood they are again.
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { applyScores, createDb } from "../db/mod.ts";
import { startService as startLimitedService } from "../tests/_service.ts";
import { until } from "../tests/_wait.ts";
import {
  benchFlags,
  createBenchDb,
  describeMachine,
  fmt,
  requireCommands,
  run,
  runWrk,
  startService,
  type WrkResult,
} from "./_harness.ts";

const flags = benchFlags({
  attackers: "2000,5000",
  seconds: 10,
  hold: 60,
  proxy: "none",
  drip: 3,
  connections: 16,
  students: 20_000,
  "flood-limit": 1024,
  exams: 20,
});
const attackerCounts = flags.attackers.split(",").map(Number);
const { seconds, students, exams, connections: wrkConnections } = flags;
const holdMs = flags.hold * 1000;
const dripMs = flags.drip * 1000;

const encoder = new TextEncoder();

/** N connections to the service that never complete a request; each notes when the server closed it. */
async function attack(port: number, count: number, kind: "idle" | "slowloris") {
  const conns: Deno.TcpConn[] = [];
  const closedAfterMs: number[] = [];
  let refused = 0;
  const openedAt = performance.now();
  // In batches, so that the listen backlog is not what refuses them.
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.allSettled(
      Array.from(
        { length: Math.min(100, count - i) },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    for (const result of batch) {
      if (result.status === "rejected") {
        refused++;
        continue;
      }
      const conn = result.value;
      conns.push(conn);
      // Until the server closes it (a proxy may answer 408 first).
      (async () => {
        const buffer = new Uint8Array(512);
        while (await conn.read(buffer).catch(() => null) !== null);
        closedAfterMs.push(performance.now() - openedAt);
      })();
    }
  }
  const timers: ReturnType<typeof setTimeout>[] = [];
  if (kind === "slowloris") {
    const head = encoder.encode("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    for (const conn of conns) {
      conn.write(head).catch(() => {});
      // Staggered, so that the drips are spread over the interval.
      timers.push(setTimeout(() => {
        timers.push(setInterval(() => conn.write(encoder.encode("a")).catch(() => {}), dripMs));
      }, Math.random() * dripMs));
    }
  }
  return {
    opened: conns.length,
    refused,
    openedAt,
    closed: () => [...closedAfterMs],
    close() {
      timers.forEach((t) => clearTimeout(t));
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by the server */ }
      }
    },
  };
}

/** wrk --latency for `seconds`. */
async function wrk(url: string, script?: string): Promise<WrkResult> {
  return await runWrk(url, {
    threads: 2,
    connections: wrkConnections,
    seconds,
    timeout: "10s",
    script,
  });
}

/** GET /healthz on a new connection: the time from connect to a 200 status line, or NaN. */
async function healthzOnNewConnection(port: number): Promise<number> {
  const start = performance.now();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(
        encoder.encode("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
      );
      const buffer = new Uint8Array(64);
      const n = await Promise.race([conn.read(buffer), sleep(5_000).then(() => null)]);
      const status = n ? new TextDecoder().decode(buffer.subarray(0, n)) : "";
      return status.startsWith("HTTP/1.1 200") ? performance.now() - start : NaN;
    } finally {
      conn.close();
    }
  } catch {
    return NaN;
  }
}

/** healthzOnNewConnection every 20 ms until `signal`. */
async function newConnectionProbe(port: number, signal: AbortSignal) {
  const latencies: number[] = [];
  let errors = 0;
  while (!signal.aborted) {
    const ms = await healthzOnNewConnection(port);
    if (Number.isNaN(ms)) errors++;
    else latencies.push(ms);
    await sleep(20);
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { count: latencies.length, p50: at(0.5), p99: at(0.99), errors };
}

/**
 * Past the descriptor limit, on a second service under `ulimit -n openFiles`:
 * idle connections beyond it, new connections tried during the flood, then
 * how long after the flood ends a new connection is answered again.
 */
async function floodPastLimit(databaseUrl: string, openFiles: number) {
  const service = await startLimitedService({ DATABASE_URL: databaseUrl, ROLE: "api" }, {
    openFiles,
  });
  try {
    const port = Number(new URL(service.url).port);
    const attackers = await attack(port, Math.round(openFiles * 1.5), "idle");
    await sleep(1_500);
    const stop = new AbortController();
    const probe = newConnectionProbe(port, stop.signal);
    await sleep(3_000);
    stop.abort();
    const during = await probe;
    attackers.close();
    const releasedAt = performance.now();
    // NaN: not answered again within 15 s.
    const recoveredMs = await until(
      "a new connection to be answered",
      async () =>
        !Number.isNaN(await healthzOnNewConnection(port)) && performance.now() - releasedAt,
      15_000,
      50,
    ).catch(() => NaN);
    const output = service.output();
    return {
      openFiles,
      opened: attackers.opened,
      refused: attackers.refused,
      during,
      listenerDied: /Too many open files/.test(output),
      crashed: /Uncaught/.test(output),
      recoveredMs,
    };
  } finally {
    await stopWithin(service.stop(), () => service.stop("SIGKILL"), service.output);
  }
}

/**
 * Waits up to 20 s for a service to exit after SIGTERM, then kills it: a
 * graceful shutdown that hangs is reported, not left running.
 */
async function stopWithin(
  stopped: Promise<unknown>,
  kill: () => Promise<unknown>,
  output?: () => string,
) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) =>
    timer = setTimeout(() => resolve(true), 20_000)
  );
  if (await Promise.race([stopped.then(() => false), timedOut])) {
    const lines = output?.().split("\n").filter((line) => !line.includes('"msg":"request"'));
    console.log(
      `the service did not exit within 20 s of SIGTERM; killed it` +
        (lines ? `; its last log lines:\n${lines.slice(-8).join("\n")}` : ""),
    );
    await kill();
    await stopped;
  }
  clearTimeout(timer);
}

/**
 * nginx in front of the service with the timeouts README recommends: the
 * header of a request within 10 s, an idle keep-alive connection closed after
 * 30 s. (No per-address connection limit here: attackers and healthy clients
 * all come from 127.0.0.1.)
 */
async function startNginx(upstreamPort: number) {
  const dir = await Deno.makeTempDir({ prefix: "scorestream_nginx_" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `worker_processes auto;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 16384; }
http {
  access_log off;
  client_header_timeout 10s;
  client_body_timeout 10s;
  send_timeout 10s;
  keepalive_timeout 30s;
  upstream scorestream { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://scorestream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`,
  );
  const child = new Deno.Command("nginx", {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    const errors = await Deno.readTextFile(`${dir}/error.log`).catch(() => "");
    if (errors) console.log(`nginx error.log:\n${errors.split("\n").slice(-20).join("\n")}`);
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await until(
      "nginx to start",
      async () => !Number.isNaN(await healthzOnNewConnection(port)),
      10_000,
      100,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, port, stop };
}

function describeClosed(
  { opened, refused, closed, heldMs }: NonNullable<Row["attack"]>,
): string {
  const sorted = closed.toSorted((a, b) => a - b);
  const median = sorted.length
    ? `, median after ${fmt(sorted[sorted.length >> 1] / 1000, 1)} s`
    : "";
  return `${fmt(closed.length)} of ${fmt(opened)} in ${fmt(heldMs / 1000)} s${median}` +
    (refused ? ` (${fmt(refused)} refused)` : "");
}

async function openFds(pid: number): Promise<number> {
  return (await run("ls", [`/proc/${pid}/fd`])).trim().split("\n").length;
}

async function rssMb(pid: number): Promise<number> {
  const status = await run("cat", [`/proc/${pid}/status`]);
  return Number(status.match(/^VmRSS:\s*(\d+) kB/m)?.[1] ?? NaN) / 1024;
}

async function fdLimit(pid: number): Promise<string> {
  const limits = await run("cat", [`/proc/${pid}/limits`]);
  const m = limits.match(/^Max open files\s+(\S+)\s+(\S+)/m);
  return m ? `${m[1]} soft / ${m[2]} hard` : "unknown";
}

interface Row {
  phase: string;
  students: WrkResult;
  healthz: WrkResult;
  fresh: Awaited<ReturnType<typeof newConnectionProbe>>;
  fds: number;
  rss: number;
  attack?: { opened: number; refused: number; closed: number[]; heldMs: number };
}

await requireCommands("wrk", "nginx");
console.log(await describeMachine("bench:slowloris"));
const db = await createBenchDb("scorestream_bench_slowloris");
const rows: Row[] = [];
let service: Awaited<ReturnType<typeof startService>> | undefined;
let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
const script = await Deno.makeTempFile({ prefix: "scorestream_slowloris_", suffix: ".lua" });
try {
  service = await startService({ DATABASE_URL: db.url, ROLE: "api" });
  const { pid, url: serviceUrl } = service;
  // /healthz answers before the migrations ran; /readyz after.
  await until(
    "the service to become ready",
    async () =>
      (await fetch(`${serviceUrl}/readyz`).then((r) => r.text().then(() => r.status))) === 200,
    60_000,
    100,
  );

  // Data through the writers' own write path, applyScores().
  const writer = createDb({ url: db.url });
  for (let first = 0; first < students; first += 1000) {
    const names: string[] = [];
    const examNumbers: number[] = [];
    const scores: number[] = [];
    for (let s = first; s < Math.min(first + 1000, students); s++) {
      for (let e = 0; e < exams; e++) {
        names.push(`Student_${s}`);
        examNumbers.push(1000 + e);
        scores.push(((s * 7919 + e * 104729) % 1000) / 1000);
      }
    }
    await applyScores(writer.db, 0, { names, exams: examNumbers, scores }, []);
  }
  await writer.close();
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  await sql`VACUUM ANALYZE`;
  await sql.end();
  await Deno.writeTextFile(
    script,
    `math.randomseed(${Date.now() % 1e6})\n` +
      `request = function() return wrk.format("GET", "/students/Student_" .. math.random(0, ${
        students - 1
      })) end\n`,
  );
  if (flags.proxy === "nginx") nginx = await startNginx(Number(new URL(service.url).port));
  else if (flags.proxy !== "none") {
    throw new Error(`Cannot use --proxy ${flags.proxy}: not nginx or none`);
  }
  // Healthy clients and attackers talk to this: the service, or nginx in front of it.
  const { url, port } = nginx ?? { url: service.url, port: Number(new URL(service.url).port) };
  const check = await fetch(`${url}/students/Student_1`);
  if (check.status !== 200) throw new Error(`GET /students/Student_1: ${check.status}`);
  await check.body?.cancel();

  const measure = async (phase: string): Promise<Omit<Row, "attack">> => {
    const studentsLoad = await wrk(url, script);
    const stop = new AbortController();
    const probe = newConnectionProbe(port, stop.signal);
    const healthz = await wrk(`${url}/healthz`);
    stop.abort();
    return {
      phase,
      students: studentsLoad,
      healthz,
      fresh: await probe,
      fds: await openFds(pid),
      rss: await rssMb(pid),
    };
  };

  const limit = await fdLimit(pid);
  await measure("warm-up");
  rows.push(await measure("baseline"));
  const baselineFds = rows[0].fds;
  for (const kind of ["idle", "slowloris"] as const) {
    for (const count of attackerCounts) {
      const attackers = await attack(port, count, kind);
      await sleep(2_000);
      const row = await measure(`${fmt(count)} ${kind}`);
      const rest = holdMs - (performance.now() - attackers.openedAt);
      if (rest > 0) await sleep(rest);
      rows.push({
        ...row,
        attack: {
          opened: attackers.opened,
          refused: attackers.refused,
          closed: attackers.closed(),
          heldMs: performance.now() - attackers.openedAt,
        },
      });
      attackers.close();
      // Wait for the service to see them go before the next phase (10 s at most: the
      // next phase's row shows what is left).
      await until(
        "the attackers' descriptors to close",
        async () => (await openFds(pid)) <= baselineFds + 100,
        10_000,
        100,
      ).catch(() => {});
    }
  }
  rows.push(await measure("baseline again"));
  const flood = await floodPastLimit(db.url, flags["flood-limit"]);

  const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "-");
  const table = [
    [
      "phase",
      "students rps",
      "p50 ms",
      "p99 ms",
      "max ms",
      "err",
      "healthz rps",
      "p50 ms",
      "p99 ms",
      "err",
      "new-conn p50",
      "p99",
      "err",
      "service fds",
      "RSS MB",
      "attackers closed by server",
    ],
    ...rows.map((r) => [
      r.phase,
      fmt(r.students.rps),
      ms(r.students.p50),
      ms(r.students.p99),
      ms(r.students.max),
      String(r.students.errors),
      fmt(r.healthz.rps),
      ms(r.healthz.p50),
      ms(r.healthz.p99),
      String(r.healthz.errors),
      ms(r.fresh.p50),
      ms(r.fresh.p99),
      String(r.fresh.errors),
      fmt(r.fds),
      fmt(r.rss, 0),
      r.attack ? describeClosed(r.attack) : "",
    ]),
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  console.log(`
${
    nginx
      ? "through nginx (--proxy nginx) in front of the service"
      : "straight to the service"
  }: ROLE=api, ${fmt(students * exams)} results (${
    fmt(students)
  } students x ${exams} exams); open-file limit of the service process: ${limit}
healthy load: wrk -t2 -c${wrkConnections} -d${seconds}s on keep-alive connections, /students/{random id} then /healthz;
  new-conn: one GET /healthz per new TCP connection every 20 ms during the /healthz run (connect to status line)
attackers: idle = connected, nothing sent; slowloris = "GET /healthz HTTP/1.1" + a partial header, one more byte every ${flags.drip} s
`);
  for (const row of table) {
    console.log(
      row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))
        .join("  "),
    );
  }
  console.log(`
past the limit: a second service under ulimit -n ${fmt(flood.openFiles)}, ${
    fmt(flood.opened + flood.refused)
  } idle connections tried (${fmt(flood.opened)} connected, ${fmt(flood.refused)} refused)
  Deno.serve's accept loop died (Too many open files): ${flood.listenerDied ? "yes" : "no"}; ${
    flood.crashed ? "the process crashed" : "the process kept running"
  }
  new connections during the flood: ${fmt(flood.during.count)} answered, ${
    fmt(flood.during.errors)
  } failed
  first new connection answered ${
    Number.isNaN(flood.recoveredMs)
      ? "never (waited 15 s)"
      : `${fmt(flood.recoveredMs)} ms after the flood ended`
  }`);
} finally {
  await nginx?.stop();
  if (service) {
    const { pid } = service;
    await stopWithin(service.stop(), () => run("kill", ["-KILL", String(pid)]));
  }
  await Deno.remove(script).catch(() => {});
  await db.drop();
}
