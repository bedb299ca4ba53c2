import type { Kysely } from "kysely";
import { parseArgs } from "node:util";
import { createApi } from "./api/mod.ts";
import {
  createDb,
  createQueries,
  type Database,
  describeError,
  type EmbeddedPostgres,
  isMigrated,
  loadCheckpoint,
  migrateToLatest,
  startEmbeddedPostgres,
} from "./db/mod.ts";
import {
  consumeFeed,
  createCheckpointer,
  createDemoFeed,
  createRouter,
  IngestStats,
  type Router,
} from "./ingest/mod.ts";
import { startWriters } from "./workers/mod.ts";

/** Everything the service can be told, from flags or the environment. */
export interface Config {
  /** The SSE feed; undefined: the built-in demo feed. */
  scoresUrl?: string;
  /** Postgres; undefined: the embedded PGlite persisted under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  port: number;
  host: string;
  writers: number;
  /** `all` ingests and serves; `api` only serves; `ingest` only ingests (and serves health). */
  role: "all" | "api" | "ingest";
  /** Events per second of the built-in feed. */
  demoRate: number;
  maxEventBytes: number;
  corsOrigin?: string;
}

const OPTIONS = {
  "scores-url": "SCORES_URL",
  "database-url": "DATABASE_URL",
  "data-dir": "DATA_DIR",
  port: "PORT",
  host: "HOST",
  writers: "WRITERS",
  role: "ROLE",
  "demo-rate": "DEMO_RATE",
  "max-event-bytes": "MAX_EVENT_BYTES",
  "cors-origin": "CORS_ORIGIN",
} as const;

/**
 * Reads the configuration once: each flag overrides its environment variable.
 * Throws a RangeError naming the setting when a value is malformed.
 */
export function parseConfig(args: string[], env: Record<string, string | undefined>): Config {
  const { values } = parseArgs({
    args,
    options: Object.fromEntries(Object.keys(OPTIONS).map((k) => [k, { type: "string" }])),
    strict: true,
  });
  const get = (name: keyof typeof OPTIONS) =>
    (values[name] as string | undefined) ?? (env[OPTIONS[name]] || undefined);
  const integer = (name: keyof typeof OPTIONS, fallback: number, min: number, max: number) => {
    const text = get(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) {
      throw new RangeError(
        `Cannot parse ${OPTIONS[name]} "${text}": not an integer in ${min}..${max}`,
      );
    }
    return n;
  };
  const role = get("role") ?? "all";
  if (role !== "all" && role !== "api" && role !== "ingest") {
    throw new RangeError(`Cannot parse ROLE "${role}": not one of all, api, ingest`);
  }
  return {
    scoresUrl: get("scores-url"),
    databaseUrl: get("database-url"),
    dataDir: get("data-dir") ?? "./data",
    port: integer("port", 8000, 0, 65535),
    host: get("host") ?? "0.0.0.0",
    writers: integer("writers", Math.max(2, navigator.hardwareConcurrency), 1, 64),
    role,
    demoRate: integer("demo-rate", 5, 0, 10_000_000),
    maxEventBytes: integer("max-event-bytes", 1 << 20, 1024, 1 << 30),
    corsOrigin: get("cors-origin"),
  };
}

function log(record: Record<string, unknown>) {
  console.log(JSON.stringify({ time: new Date().toISOString(), ...record }));
}

async function main(config: Config) {
  const shutdown = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => shutdown.abort());
  }

  let embedded: EmbeddedPostgres | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({ dataDir: `${config.dataDir}/pglite` });
    databaseUrl = embedded.url;
  }
  const control = createDb({ url: databaseUrl, max: 2, applicationName: "scorestream-control" });
  const reader = createDb({
    url: databaseUrl,
    max: 4,
    statementTimeoutMs: 5_000,
    applicationName: "scorestream-api",
  });
  const stats = new IngestStats(() => pool?.pending() ?? []);
  let pool: ReturnType<typeof startWriters> | undefined;

  const api = createApi({
    queries: createQueries(reader.db),
    stats,
    ready: () => isMigrated(control.db).catch(() => false),
    log,
    corsOrigin: config.corsOrigin,
  });
  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) => {
      const feed = config.role === "api"
        ? "none (ROLE=api)"
        : config.scoresUrl ?? "built-in demo feed";
      const database = config.databaseUrl
        ? redact(config.databaseUrl)
        : `embedded PGlite in ${config.dataDir}/pglite`;
      log({ level: "info", msg: `listening on http://${hostname}:${port}`, feed, database });
    },
  }, api.fetch);

  await migrateWithRetry(control.db, shutdown.signal);

  let ingest: Promise<void> | undefined;
  let router: Router | undefined;
  let checkpointer: ReturnType<typeof createCheckpointer> | undefined;
  if (config.role !== "api" && !shutdown.signal.aborted) {
    const feedKey = config.scoresUrl ?? "builtin:demo";
    const checkpoint = await loadCheckpoint(control.db, feedKey);
    stats.lastEventId = checkpoint ?? null;
    checkpointer = createCheckpointer({
      db: control.db,
      feed: feedKey,
      log,
      onSaved: (id) => {
        stats.lastEventId = id;
        stats.checkpointSavedAt = performance.now();
      },
    });
    const routed = createRouter({
      pool: pool = startWriters({
        count: config.writers,
        databaseUrl,
        onAck: (_, ack) => routed.acked(ack),
        onRetry: (writer, retry) => {
          stats.writerRetries++;
          log({ level: "warn", msg: "writer retrying", writer, ...retry });
        },
        onRestart: (writer, error) => {
          stats.writerRestarts++;
          log({ level: "error", msg: "writer died and was replaced", writer, error });
        },
      }),
      stats,
      onCommitted: (id) => checkpointer!.update(id),
    });
    router = routed;
    const demo = config.scoresUrl ? undefined : createDemoFeed({ rate: config.demoRate });
    ingest = consumeFeed({
      url: config.scoresUrl ?? "http://demo.invalid/scores",
      fetch: demo && fetchFrom(demo),
      lastEventId: checkpoint,
      signal: shutdown.signal,
      maxEventBytes: config.maxEventBytes,
      onChunk: (chunk) => routed.route(chunk),
      onStatus: (status) => {
        stats.state = status.state;
        stats.reconnects = status.reconnects;
        stats.oversized = status.oversized;
      },
      log,
    });
  }

  await new Promise((resolve) =>
    shutdown.signal.addEventListener("abort", resolve, { once: true })
  );
  log({ level: "info", msg: "shutting down" });
  const deadline = AbortSignal.timeout(8_000);
  await ingest;
  await Promise.race([router?.settled(), aborted(deadline)]);
  await Promise.race([pool?.close(), aborted(deadline)]);
  await checkpointer?.close(deadline);
  await server.shutdown();
  await Promise.all([control.close(), reader.close()]);
  await embedded?.close();
  log({ level: "info", msg: "stopped", lastEventId: stats.lastEventId });
  Deno.exit(0);
}

async function migrateWithRetry(db: Kysely<Database>, signal: AbortSignal) {
  for (let delay = 250; !signal.aborted; delay = Math.min(delay * 2, 5_000)) {
    try {
      await migrateToLatest(db);
      return;
    } catch (error) {
      log({ level: "error", msg: "cannot migrate, retrying", error: describeError(error), delay });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** A `fetch` answered by a handler in this process; aborting the request ends the body. */
function fetchFrom(handler: (request: Request) => Response): typeof fetch {
  return (input, init) => {
    const request = new Request(input, init);
    const response = handler(request);
    if (!response.body) return Promise.resolve(response);
    const body = response.body.pipeThrough(new TransformStream(), { signal: request.signal });
    return Promise.resolve(new Response(body, response));
  };
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.href;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

if (import.meta.main) {
  let config: Config;
  try {
    config = parseConfig(Deno.args, Deno.env.toObject());
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(2);
  }
  await main(config);
}
