// What every end-to-end benchmark needs: the machine it ran on, a throwaway
// database, the real service in a child process (as `deno task start` runs it),
// and the demo feed on a loopback port.
import { parseArgs } from "node:util";
import postgres from "postgres";
import { demoFeed, prerenderedDemoFeed, serveFeed } from "../tests/_feed_server.ts";
import {
  type Service as TestService,
  startService as startTestService,
  type Stats,
  threadCpuSeconds,
} from "../tests/_service.ts";

/** The admin connection string; override with BENCH_ADMIN_URL. */
export const ADMIN_URL = Deno.env.get("BENCH_ADMIN_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * A benchmark's flags: `--name value` for each key of `defaults`, with that default;
 * a number where the default is a number (NaN where the value is not one), else a
 * string or a boolean.
 */
export function benchFlags<T extends Record<string, number | string | boolean>>(defaults: T): T {
  const entries = Object.entries(defaults);
  const { values } = parseArgs({
    args: Deno.args,
    options: Object.fromEntries(entries.map(([name, value]) => [
      name,
      typeof value === "boolean"
        ? { type: "boolean" as const, default: value }
        : { type: "string" as const, default: String(value) },
    ])),
  });
  const flags: Record<string, unknown> = {};
  for (const [name, value] of entries) {
    flags[name] = typeof value === "number" ? Number(values[name]) : values[name];
  }
  return flags as T;
}

/**
 * One line each: cores, CPU model, memory, Deno, Postgres, and the command
 * (`deno task <task>` with this process's arguments).
 */
export async function describeMachine(task: string): Promise<string> {
  const command = `deno task ${task} ${Deno.args.join(" ")}`.trim();
  // Deno grants /proc only with --allow-all; `cat` needs just --allow-run=cat.
  const cpuinfo = await run("cat", ["/proc/cpuinfo"]);
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  const memKb = Deno.systemMemoryInfo().total / 1024;
  const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const [{ version }] = await sql<{ version: string }[]>`SELECT version()`;
  const settings = await sql<{ name: string; setting: string }[]>`
    SELECT name, setting FROM pg_settings
    WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_wal_size')
    ORDER BY name`;
  await sql.end();
  return [
    `machine: ${navigator.hardwareConcurrency} cores (nproc), ${model}, ` +
    `${(memKb / 1024 / 1024).toFixed(1)} GiB RAM`,
    `deno ${Deno.version.deno}; ${version.split(" on ")[0]}; ` +
    settings.map((s) => `${s.name}=${s.setting}`).join(" "),
    `command: ${command}`,
  ].join("\n");
}

/** A fresh database, dropped (with its connections) by `drop()`. */
export async function createBenchDb(name: string) {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** The service in a child process, as tests/_service.ts starts it. */
export interface Service extends TestService {
  /** Peak resident set of the process (VmHWM), in bytes. */
  peakRss(): Promise<number>;
}

/**
 * Starts main.ts with the flags of `deno task start` and waits for /healthz. Only
 * the last 20,000 characters of its output are kept, and printed if it fails.
 */
export async function startService(
  env: Record<string, string>,
  { from }: { from?: URL } = {},
): Promise<Service> {
  const service = await startTestService(env, { deno: "deno", outputLimit: 20_000, from });
  return {
    ...service,
    async peakRss() {
      const status = await run("cat", [`/proc/${service.pid}/status`]);
      return Number(status.match(/^VmHWM:\s*(\d+) kB/m)?.[1] ?? NaN) * 1024;
    },
    async stop(signal) {
      const status = await service.stop(signal);
      if (!status.success && status.signal !== "SIGTERM") {
        console.error(`service exited with ${status.code}:\n${service.output().slice(-4000)}`);
      }
      return status;
    },
  };
}

const DEBIAN_PACKAGES: Record<string, string> = {
  wrk: "wrk",
  psql: "postgresql-client",
  nginx: "nginx-light",
};

/** Fails at once, naming the package to install, when a command the benchmark runs is missing. */
export async function requireCommands(...names: string[]): Promise<void> {
  for (const name of names) {
    try {
      await new Deno.Command(name, { args: ["-v"], stdout: "null", stderr: "null" }).output();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new Error(
        `This benchmark runs ${name}, which is not installed (Debian: apt-get install ${
          DEBIAN_PACKAGES[name] ?? name
        })`,
      );
    }
  }
}

/** Runs a command, returns its stdout; throws with stderr when it fails. */
export async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const { success, stdout, stderr } = await child.output();
  const text = new TextDecoder().decode(stdout);
  if (!success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(stderr)}`);
  }
  return text;
}

/** What `wrk --latency` measured: latencies in ms, errors = socket errors + non-2xx answers. */
export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  max: number;
  requests: number;
  errors: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** `wrk --latency` on `url` for `seconds`, with a Lua `script` if given. */
export async function runWrk(url: string, { threads, connections, seconds, timeout, script }: {
  threads: number;
  connections: number;
  seconds: number;
  /** wrk's own timeout per request, e.g. "10s" (wrk's default: 2 s). */
  timeout?: string;
  script?: string;
}): Promise<WrkResult> {
  const out = await run("wrk", [
    `-t${threads}`,
    `-c${connections}`,
    `-d${seconds}s`,
    ...(timeout ? ["--timeout", timeout] : []),
    "--latency",
    ...(script ? ["-s", script] : []),
    url,
  ]);
  return parseWrk(out);
}

function parseWrk(out: string): WrkResult {
  const ms = (m: RegExpMatchArray | null) => m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
  const percentile = (p: number) =>
    ms(out.match(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m")));
  const socket = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  return {
    rps: Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? NaN),
    p50: percentile(50),
    p99: percentile(99),
    max: ms(out.match(/Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\b/)),
    requests: Number(out.match(/(\d+) requests in/)?.[1] ?? 0),
    errors: non2xx + (socket ? socket.slice(1).reduce((n, count) => n + Number(count), 0) : 0),
  };
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** What one run of the demo feed through the service measured. */
export interface IngestRun {
  events: number;
  /**
   * CPU seconds (user + system) of the service process, of each of its threads
   * (see `threadCpuSeconds`), and of its Postgres backends, from when it
   * answered /healthz (its start-up until then: `startUp`) to the last commit.
   */
  cpu: { service: number; threads: Map<string, number>; postgres: number; startUp: number };
  /** From the feed's first byte to the /stats poll that saw every event committed. */
  seconds: number;
  peakRss: number;
  stats: Stats;
}

/**
 * Feeds `events` demo events at full speed (rate 0) from this process into a
 * fresh service on `databaseUrl`, and waits until all are committed and the
 * checkpoint is at the last one.
 */
export async function ingestDemo(
  { databaseUrl, events, seed = 1, writers, liveFeed = false }: {
    databaseUrl: string;
    events: number;
    seed?: number;
    writers?: number;
    /** Generate the feed while it is read instead of rendering it beforehand. */
    liveFeed?: boolean;
  },
): Promise<IngestRun> {
  const options = { seed, rate: 0, total: events };
  const feed = serveFeed(liveFeed ? demoFeed(options) : await prerenderedDemoFeed(options), {
    timed: true,
  });
  const env: Record<string, string> = { DATABASE_URL: databaseUrl, SCORES_URL: feed.url };
  if (writers !== undefined) env.WRITERS = String(writers);
  const service = await startService(env);
  try {
    const startUp = {
      service: await cpuSeconds(service.pid),
      threads: await threadCpuSeconds(service.pid),
    };
    const last = String(events - 1);
    // The last commit is when every event is applied; the checkpoint follows it.
    await service.waitFor((s) => s.ingest.applied >= events, 600_000, 20);
    const at = performance.now();
    const stats = await service.waitFor((s) => s.ingest.lastEventId === last, 600_000, 20);
    const peakRss = await service.peakRss();
    const threads = await threadCpuSeconds(service.pid);
    for (const [name, seconds] of startUp.threads) {
      threads.set(name, (threads.get(name) ?? 0) - seconds);
    }
    const cpu = {
      service: await cpuSeconds(service.pid) - startUp.service,
      threads,
      postgres: await backendCpuSeconds(databaseUrl),
      startUp: startUp.service,
    };
    return { events, seconds: (at - feed.firstByteAt()!) / 1000, peakRss, cpu, stats };
  } finally {
    await service.stop();
    await feed.close();
  }
}

/** User + system CPU seconds of a process so far (clock ticks of 1/100 s). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await run("cat", [`/proc/${pid}/stat`]);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of every backend connected to the database of `url` (other than this one). */
export async function backendCpuSeconds(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const pids = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  await sql.end();
  let total = 0;
  for (const { pid } of pids) total += await cpuSeconds(pid).catch(() => 0);
  return total;
}
