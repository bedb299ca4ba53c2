// The first minutes of the service, run as `deno task start` runs it.
import assert from "node:assert/strict";
import { freePort, type LogRecord, readProcFile, startService, startTask } from "./_service.ts";
import { until } from "./_wait.ts";

const root = new URL("../", import.meta.url);

/** The log record that says the service is ready. */
const isReadyLine = (record: LogRecord) => /^ready in \d+ ms/.test(String(record.msg));

/**
 * main.ts in a child process with the start task's flags, run to its exit; `grant`
 * replaces the write access the task grants.
 */
async function runToExit(
  env: Record<string, string>,
  { timeoutMs = 30_000, grant }: { timeoutMs?: number; grant?: string } = {},
) {
  const task = await startTask(env);
  const flags = task.flags.map((f) =>
    grant && f.startsWith("--allow-write=") ? `--allow-write=${grant}` : f
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "main.ts"],
    cwd: root,
    env: { ...task.env, HOST: "127.0.0.1", PORT: String(freePort()), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  });
  const started = performance.now();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return {
    code,
    ms: performance.now() - started,
    output: decoder.decode(stdout) + decoder.decode(stderr),
  };
}

async function readUntilReady(url: string, timeoutMs: number) {
  const statuses = new Map<number, number>();
  let ready = false;
  const stop = AbortSignal.timeout(timeoutMs);
  const read = async (path: string) => {
    while (!ready && !stop.aborted) {
      try {
        const response = await fetch(`${url}${path}`, { signal: stop });
        await response.body?.cancel();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 503) {
          assert.equal(response.headers.get("content-type"), "application/problem+json");
          assert.ok(response.headers.get("retry-after"), `no Retry-After on ${path}`);
        }
      } catch (error) {
        if (!stop.aborted) throw error;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const readiness = (async () => {
    while (!stop.aborted) {
      const response = await fetch(`${url}/readyz`, { signal: stop }).catch(() => null);
      await response?.body?.cancel();
      if (response?.status === 200) return ready = true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  })();
  await Promise.all([read("/students?limit=5"), read("/exams"), read("/stats"), readiness]);
  return { ready, statuses };
}

Deno.test("a first start on an empty data directory becomes ready while clients read, every time", async () => {
  for (let start = 0; start < 20; start++) {
    const dataDir = `./data/test-${crypto.randomUUID()}`;
    const service = await startService({ DATA_DIR: dataDir, DATABASE_URL: "" });
    try {
      const { ready, statuses } = await readUntilReady(service.url, 60_000);
      assert.ok(ready, `start ${start} never became ready: ${[...statuses]}\n${service.output()}`);
      assert.ok(!statuses.has(500), `start ${start} answered 500: ${[...statuses]}`);
      await until("the ready line", () => service.logs().some(isReadyLine), 2_000);
      assert.equal((await service.stop("SIGINT")).code, 0);
    } finally {
      await service.stop("SIGKILL");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  }
});

Deno.test("SIGINT during the first migration stops the service with exit 0", async () => {
  const dataDir = `./data/test-${crypto.randomUUID()}`;
  try {
    const service = await startService({ DATA_DIR: dataDir, DATABASE_URL: "" });
    const started = performance.now();
    const status = await service.stop("SIGINT");
    assert.equal(status.code, 0, service.output());
    assert.ok(performance.now() - started < 10_000);
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("SIGINT while the database does not answer stops the service with exit 0", async () => {
  // A port that accepts connections and never answers: postgres.js waits.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    const service = await startService({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${silent.addr.port}/scores`,
    });
    await until("the service to connect to the silent database", () => held.length > 0, 10_000);
    const started = performance.now();
    const status = await service.stop("SIGINT");
    assert.equal(status.code, 0, service.output());
    assert.ok(performance.now() - started < 10_000);
  } finally {
    silent.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("settings that can never work fail start-up with exit 2, saying what to fix", async () => {
  for (
    const [env, message] of [
      [{ SCORES_URL: "localhost:8001/scores" }, /SCORES_URL.*scheme must be http or https/],
      [{ SCORES_URL: "ftp://feed.example/scores" }, /SCORES_URL.*scheme must be http or https/],
      [{ DATABASE_URL: "postgres://postgres:s3cr3t@[127.0.0.1/x" }, /Cannot parse DATABASE_URL/],
      [{ DATABASE_URL: "mysql://postgres:s3cr3t@db/x" }, /DATABASE_URL.*must be postgres/],
    ] as const
  ) {
    const { code, output } = await runToExit(env);
    assert.equal(code, 2, output);
    assert.match(output, message);
    assert.doesNotMatch(output, /s3cr3t/);
  }
});

Deno.test("`deno task start` runs with a DATA_DIR anywhere, and may write only there", async () => {
  const outside = await Deno.makeTempDir();
  const relative = `./data-test-${crypto.randomUUID()}`; // beside ./data, not in it
  try {
    for (const dataDir of [`${outside}/db`, relative]) {
      const port = freePort();
      const task = new Deno.Command(Deno.execPath(), {
        args: ["task", "start"],
        cwd: root,
        env: { DATA_DIR: dataDir, DATABASE_URL: "", HOST: "127.0.0.1", PORT: String(port) },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await until(`${dataDir}: /readyz 200`, async () => {
          const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          await response?.body?.cancel();
          return response?.ok;
        }, 60_000);
        const stored = new URL(`${dataDir}/pglite/`, `file://${root.pathname}`);
        assert.ok((await Deno.stat(stored)).isDirectory, `${stored} is not a directory`);
        // The service is the task's child: its one write grant is the data directory.
        const [service] = (await readProcFile(`/proc/${task.pid}/task/${task.pid}/children`))
          .trim().split(" ");
        const argv = (await readProcFile(`/proc/${service}/cmdline`)).split("\0");
        assert.deepEqual(argv.filter((a) => a.startsWith("--allow-write")), [
          `--allow-write=${dataDir}`,
        ]);
      } finally {
        task.kill("SIGTERM");
        assert.equal((await task.status).code, 0);
      }
    }
  } finally {
    await Deno.remove(outside, { recursive: true });
    await Deno.remove(new URL(relative, root), { recursive: true }).catch(() => {});
  }
});

Deno.test("run without the start task's grant, a DATA_DIR the process may not write fails at once with exit 2, saying how", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const { code, output } = await runToExit(
      { DATA_DIR: `${dataDir}/x`, DATABASE_URL: "" },
      { grant: "./data" },
    );
    assert.equal(code, 2, output);
    assert.match(output, /Cannot write DATA_DIR .*deno task start.*--allow-write=/);
    assert.deepEqual([...Deno.readDirSync(dataDir)], []);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a second instance on a taken port fails at once, naming the port, before creating anything", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dataDir = `./data/test-${crypto.randomUUID()}`;
  try {
    const { code, output, ms } = await runToExit({
      PORT: String(taken.addr.port),
      DATA_DIR: dataDir,
      DATABASE_URL: "",
    });
    assert.equal(code, 1, output);
    assert.match(output, new RegExp(`127\\.0\\.0\\.1:${taken.addr.port}.*EADDRINUSE`));
    assert.ok(ms < 5_000, `took ${ms} ms`);
    await assert.rejects(Deno.stat(dataDir), Deno.errors.NotFound);
  } finally {
    taken.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("the start-up output is clean: no warnings, no secrets, where it listens and when it is ready", async () => {
  const dataDir = `./data/test-${crypto.randomUUID()}`;
  const refused = freePort();
  const service = await startService({
    DATA_DIR: dataDir,
    DATABASE_URL: "",
    SCORES_URL: `http://user:s3cr3t@127.0.0.1:${refused}/scores?token=t0ken`,
  });
  try {
    await service.waitFor((s) => s.ingest.reconnects > 0);
    const stats = await service.json<{ lastErrors: { feed: { error: string; at: string } } }>(
      "/stats",
    );
    assert.ok(!Number.isNaN(Date.parse(stats.lastErrors.feed.at)));
    assert.match(
      stats.lastErrors.feed.error,
      new RegExp(`ECONNREFUSED .*127\\.0\\.0\\.1:${refused}`),
    );
    const output = service.output();
    assert.doesNotMatch(output, /Warning|Ignored build scripts/);
    assert.doesNotMatch(output + JSON.stringify(stats), /s3cr3t|t0ken/);
    assert.ok(
      service.logs().some((r) =>
        /^listening on http:\/\/127\.0\.0\.1:\d+; migrating/.test(String(r.msg))
      ),
      output,
    );
    await until("the ready line", () => service.logs().some(isReadyLine), 2_000);
  } finally {
    await service.stop("SIGKILL");
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
