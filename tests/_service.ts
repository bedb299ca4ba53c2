import { until } from "./_wait.ts";

const root = new URL("../", import.meta.url);

/**
 * The environment and flags of `deno task start` for a service started with `env`, so tests
 * run the service as users do. The task's command substitution (the directory it may write,
 * from DATA_DIR) is run as `deno task` runs it, with that environment.
 */
export async function startTask(
  env: Record<string, string> = {},
  deno = Deno.execPath(),
  from = root,
): Promise<{ env: Record<string, string>; flags: string[] }> {
  const words = await startTaskWords(env, deno, from);
  const run = words.indexOf("deno");
  return {
    env: Object.fromEntries(
      words.slice(0, run).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]),
    ),
    flags: words.slice(words.indexOf("run") + 1, words.indexOf("main.ts")),
  };
}

/**
 * The words of the start task, each `"...$(command)..."` replaced by what the command prints;
 * `deno` is the executable that runs a `deno` there (see startService).
 */
export async function startTaskWords(
  env: Record<string, string>,
  deno = Deno.execPath(),
  from = root,
): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", from)));
  const task: string = config.tasks.start;
  const words: string[] = [];
  for (const [, quoted, plain] of task.matchAll(/"([^"]*)"|(\S+)/g)) {
    const substitution = quoted?.match(/^(.*)\$\((.*)\)(.*)$/);
    if (!substitution) {
      words.push(quoted ?? plain);
      continue;
    }
    const [, before, command, after] = substitution;
    const [program, ...args] = command.split(" ");
    const { success, stdout, stderr } = await new Deno.Command(
      program === "deno" ? deno : program,
      { args, cwd: from, env: { NO_COLOR: "1", ...env }, stdin: "null" },
    ).output();
    const decoder = new TextDecoder();
    if (!success) throw new Error(`${command} failed: ${decoder.decode(stderr)}`);
    words.push(before + decoder.decode(stdout).trim() + after);
  }
  return words;
}

/**
 * A file of another process under /proc. Deno asks for --allow-all to read those
 * itself; `deno task test` grants --allow-run, so `cat` reads it.
 */
export async function readProcFile(path: string): Promise<string> {
  return await readProcFiles([path]);
}

/** The files of `readProcFile`, concatenated, read by one `cat`. */
async function readProcFiles(paths: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("cat", { args: paths }).output();
  const decoder = new TextDecoder();
  if (!success) throw new Error(`cat ${paths.join(" ")}: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

/**
 * User + system CPU seconds of each thread of a process so far, by thread: `main`
 * (the thread whose id is the process's), `worker-N` (Web Workers, numbered in the
 * order they were created), and the runtime's own threads summed by name (V8's
 * helpers, which collect garbage and compile; tokio's, which do file I/O).
 */
export async function threadCpuSeconds(pid: number): Promise<Map<string, number>> {
  const { stdout } = await new Deno.Command("ls", { args: [`/proc/${pid}/task`] }).output();
  const tids = new TextDecoder().decode(stdout).split(/\s+/).filter(Boolean);
  const stats = await readProcFiles(tids.map((tid) => `/proc/${pid}/task/${tid}/stat`));
  const threads = new Map<string, number>();
  for (const stat of stats.split("\n").filter(Boolean)) {
    const tid = Number(stat.slice(0, stat.indexOf(" ")));
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const name = tid === pid ? "main" : comm;
    threads.set(name, (threads.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
  }
  return threads;
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The real service in a child process, as `deno task start` runs it. */
export interface Service {
  url: string;
  pid: number;
  /** Everything it printed so far (the last `outputLimit` characters). */
  output(): string;
  /** The JSON log records in the output so far, parsed (other lines left out). */
  logs(): LogRecord[];
  json<T = Record<string, unknown>>(path: string): Promise<T>;
  stats(): Promise<Stats>;
  /** Polls /stats every `everyMs` until `done` holds, or throws after `timeoutMs`. */
  waitFor(done: (stats: Stats) => boolean, timeoutMs?: number, everyMs?: number): Promise<Stats>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** One line of the service's JSON log. */
export type LogRecord = { msg?: unknown; [key: string]: unknown };

/** The body of GET /stats. */
export interface Stats {
  students: number;
  exams: number;
  results: number;
  ingest: {
    state: string;
    received: number;
    applied: number;
    rejected: number;
    ignored: number;
    lastEventId: string | null;
    lagMs: number | null;
    reconnects: number;
    [key: string]: unknown;
  };
}

/**
 * Starts main.ts with the given environment on a free port and waits for /healthz.
 * With `openFiles`, the process runs under that file descriptor limit (`ulimit -n`).
 * `deno` is the executable to run (`--allow-run=deno` grants the one on PATH, not
 * `Deno.execPath()`); `outputLimit` bounds the output kept, for services that run long;
 * `from` is the checkout to run (another build, for a benchmark's baseline).
 */
export async function startService(
  env: Record<string, string>,
  { openFiles, deno = Deno.execPath(), outputLimit = Infinity, from = root }: {
    openFiles?: number;
    deno?: string;
    outputLimit?: number;
    from?: URL;
  } = {},
): Promise<Service> {
  const port = freePort();
  const task = await startTask(env, deno, from);
  const args = ["run", ...task.flags, "main.ts"];
  const child = new Deno.Command(openFiles ? "/bin/sh" : deno, {
    args: openFiles ? ["-c", `ulimit -n ${openFiles} && exec "$0" "$@"`, deno, ...args] : args,
    cwd: from,
    env: { ...task.env, PORT: String(port), HOST: "127.0.0.1", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      output = (output + decoder.decode(chunk, { stream: true })).slice(-outputLimit);
    }
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const url = `http://127.0.0.1:${port}`;
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => exited = s);

  const service: Service = {
    url,
    pid: child.pid,
    output: () => output,
    logs: () =>
      output.split("\n").flatMap((line) => {
        try {
          const record = JSON.parse(line);
          return typeof record === "object" && record !== null ? [record as LogRecord] : [];
        } catch {
          return []; // not a log record, or cut off by outputLimit
        }
      }),
    async json<T>(path: string) {
      // A request that takes over 30 s fails instead of hanging the suite.
      const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(30_000) });
      if (!response.ok) {
        throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
      }
      return await response.json() as T;
    },
    stats: () => service.json<Stats>("/stats"),
    async waitFor(done, timeoutMs = 60_000, everyMs = 100) {
      let last: Stats | undefined;
      return await until(
        () => `/stats to hold; last: ${JSON.stringify(last)}\n${output.slice(-4000)}`,
        async () => {
          if (exited) throw new Error(`The service exited (${exited.code}):\n${output}`);
          try {
            last = await service.stats();
            return done(last) && last;
          } catch {
            return undefined; // not up yet, or the database is away
          }
        },
        timeoutMs,
        everyMs,
      );
    },
    async stop(signal = "SIGTERM") {
      if (!exited) {
        try {
          child.kill(signal);
        } catch { /* already gone */ }
      }
      const status = await child.status;
      await collected;
      return status;
    },
  };
  try {
    await until(() => `the service to start:\n${output}`, async () => {
      if (exited) throw new Error(`The service exited (${exited.code}):\n${output}`);
      try {
        const response = await fetch(`${url}/healthz`);
        await response.body?.cancel();
        return response.ok;
      } catch {
        return undefined; // not listening yet
      }
    }, 60_000);
  } catch (error) {
    await service.stop("SIGKILL");
    throw error;
  }
  return service;
}
