import type { Kysely } from "kysely";
import { parseArgs } from "node:util";
import { aborted } from "./aborted.ts";
import {
  createApi,
  createChangeFeed,
  createEventHub,
  createReadCache,
  type LastError,
  serveHttp,
} from "./api/mod.ts";
import {
  checkSessionPooling,
  createChangeLog,
  createDb,
  createQueries,
  type Database,
  dataDir,
  describeError,
  type EmbeddedPostgres,
  isMigrated,
  listenForChanges,
  migrateToLatest,
  type PoolMode,
  startEmbeddedPostgres,
  TransactionPoolerError,
} from "./db/mod.ts";
import { feedIdentity, IngestStats, redactUrl, startIngestThread } from "./ingest/mod.ts";
import { createLogger } from "./log.ts";

/** Everything the service can be told, from flags or the environment. */
export interface Config {
  /** The SSE feed, http or https; undefined: the built-in demo feed. */
  scoresUrl?: string;
  /** The key of the feed's checkpoint: the same for every URL of one feed. */
  feedId: string;
  /** Postgres; undefined: the embedded PGlite persisted under dataDir. */
  databaseUrl?: string;
  /** `transaction`: DATABASE_URL goes through a transaction-mode pooler (see PoolMode). */
  poolMode: PoolMode;
  /** How long a leader's lease lasts without renewal: the takeover time after a hang. */
  leaseMs: number;
  /** This instance's name in the leadership row and in logs. */
  instanceId: string;
  dataDir: string;
  port: number;
  host: string;
  writers: number;
  /**
   * `all` serves and, with DATABASE_URL, competes with its peers for the feed
   * (one leads, the others stand by); `api` only serves, never a candidate.
   */
  role: "all" | "api";
  /** Events per second of the built-in feed. */
  demoRate: number;
  maxEventBytes: number;
  corsOrigin?: string;
  /** Bytes queued for one /events subscriber before it is cut off as not reading. */
  eventsBufferBytes: number;
  /** /events subscribers at once; more are refused with 503. */
  eventsMaxSubscribers: number;
  /** The change log keeps the last this many milliseconds or `eventsRetainChanges`, whichever is fewer. */
  eventsRetainMs: number;
  eventsRetainChanges: number;
}

const OPTIONS = {
  "scores-url": "SCORES_URL",
  "feed-id": "FEED_ID",
  "database-url": "DATABASE_URL",
  "database-pool-mode": "DATABASE_POOL_MODE",
  "lease-ms": "LEASE_MS",
  "instance-id": "INSTANCE_ID",
  port: "PORT",
  host: "HOST",
  writers: "WRITERS",
  role: "ROLE",
  "demo-rate": "DEMO_RATE",
  "max-event-bytes": "MAX_EVENT_BYTES",
  "cors-origin": "CORS_ORIGIN",
  "events-buffer-bytes": "EVENTS_BUFFER_BYTES",
  "events-max-subscribers": "EVENTS_MAX_SUBSCRIBERS",
  "events-retain-ms": "EVENTS_RETAIN_MS",
  "events-retain-changes": "EVENTS_RETAIN_CHANGES",
} as const;

/**
 * Reads the configuration once: each flag overrides its environment variable.
 * Throws a RangeError naming the setting when a value is malformed.
 */
export function parseConfig(args: string[], env: Record<string, string | undefined>): Config {
  if (args.some((a) => a === "--data-dir" || a.startsWith("--data-dir="))) {
    throw new RangeError(
      "Cannot use --data-dir: DATA_DIR is an environment variable only, because the start " +
        "task grants write access to it before the service starts (DATA_DIR=/path deno task start)",
    );
  }
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
  if (role !== "all" && role !== "api") {
    throw new RangeError(`Cannot parse ROLE "${role}": not one of all, api`);
  }
  const poolMode = get("database-pool-mode") ?? "session";
  if (poolMode !== "session" && poolMode !== "transaction") {
    throw new RangeError(
      `Cannot parse DATABASE_POOL_MODE "${poolMode}": not one of session, transaction`,
    );
  }
  const scoresUrl = get("scores-url");
  if (scoresUrl !== undefined) checkUrl("SCORES_URL", scoresUrl, ["http:", "https:"]);
  const databaseUrl = get("database-url");
  if (databaseUrl !== undefined) {
    checkUrl("DATABASE_URL", databaseUrl, ["postgres:", "postgresql:"]);
  }
  return {
    scoresUrl,
    feedId: get("feed-id") ?? (scoresUrl ? feedIdentity(scoresUrl) : "builtin:demo"),
    databaseUrl,
    poolMode,
    // Behind a transaction pooler no session lock frees at a crash: the lease alone
    // bounds the takeover after kill -9, so it is shorter there (aiming at under 2 s).
    leaseMs: integer("lease-ms", poolMode === "transaction" ? 1_500 : 5_000, 500, 600_000),
    instanceId: get("instance-id") ?? `${hostname()}-${crypto.randomUUID().slice(0, 8)}`,
    dataDir: dataDir(env.DATA_DIR),
    port: integer("port", 8000, 0, 65535),
    host: get("host") ?? "0.0.0.0",
    writers: integer("writers", Math.max(2, navigator.hardwareConcurrency), 1, 64),
    role,
    demoRate: integer("demo-rate", 5, 0, 10_000_000),
    maxEventBytes: integer("max-event-bytes", 1 << 20, 1024, 1 << 30),
    corsOrigin: get("cors-origin"),
    eventsBufferBytes: integer("events-buffer-bytes", 4 << 20, 64 << 10, 1 << 30),
    eventsMaxSubscribers: integer("events-max-subscribers", 1_000, 1, 100_000),
    // The floor: a cursor resumes for 10 minutes, or 1,000,000 changes.
    eventsRetainMs: integer("events-retain-ms", 600_000, 600_000, 86_400_000),
    eventsRetainChanges: integer("events-retain-changes", 1_000_000, 1_000_000, 1_000_000_000),
  };
}

/** The host's name, or "scorestream" where it may not be read. */
function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "scorestream";
  }
}

/** A URL that can never work fails start-up; its secrets stay out of the message. */
function checkUrl(name: string, url: string, protocols: string[]) {
  const example = protocols[0] === "http:"
    ? "http://host:port/path"
    : "postgres://user@host:5432/database";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RangeError(`Cannot parse ${name}: not a URL; write it as ${example}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new RangeError(
      `Cannot use ${name} "${redactUrl(url)}": its scheme must be ` +
        `${protocols.map((p) => p.slice(0, -1)).join(" or ")}, as in ${example}`,
    );
  }
}

/**
 * How long the process may take to stop after SIGTERM, at most: deployment
 * files give it at least this (tests/deploy_files_test.ts).
 */
export const SHUTDOWN_MS = 10_000;

const logger = createLogger();
const log = logger.log;

async function main(config: Config) {
  const startedAt = performance.now();
  const shutdown = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => shutdown.abort());
  }
  // Before anything is created or started: a second instance fails at once.
  checkPortIsFree(config);
  if (!config.databaseUrl) await checkCanWrite(config.dataDir);

  const lastErrors: { feed: LastError | null; database: LastError | null } = {
    feed: null,
    database: null,
  };
  const databaseFailed = (error: string) =>
    lastErrors.database = { error, at: new Date().toISOString() };
  let migrated = false;

  let embedded: EmbeddedPostgres | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({ dataDir: `${config.dataDir}/pglite` });
    databaseUrl = embedded.url;
  }
  const { poolMode } = config;
  const control = createDb({
    url: databaseUrl,
    poolMode,
    max: 2,
    applicationName: "scorestream-control",
  });
  const reader = createDb({
    url: databaseUrl,
    poolMode,
    max: 4,
    statementTimeoutMs: 5_000,
    applicationName: "scorestream-api",
  });
  // The change stream's own pool: the loop's reads, catch-ups and snapshots
  // (a snapshot holds its connection while its client takes it; a client idle
  // for 10 s mid-snapshot has its transaction ended by Postgres).
  const eventsDb = createDb({
    url: databaseUrl,
    poolMode,
    max: 3,
    statementTimeoutMs: 5_000,
    applicationName: "scorestream-events",
  });
  const events = createEventHub({
    log: createChangeLog(eventsDb.db),
    bufferBytes: config.eventsBufferBytes,
    maxSubscribers: config.eventsMaxSubscribers,
    onError: (error) =>
      log({ level: "warn", msg: "cannot read the change log", error: describeError(error) }),
  });
  // Ingest runs in a worker of its own: a hostile feed cannot take the API's
  // thread, nor an API flood ingest's.
  const ingest = config.role === "api" ? undefined : startIngestThread({
    scoresUrl: config.scoresUrl,
    feedId: config.feedId,
    demoRate: config.demoRate,
    maxEventBytes: config.maxEventBytes,
    writers: config.writers,
    databaseUrl,
    poolMode,
    instanceId: config.instanceId,
    // With a Postgres server every instance of ROLE=all competes for the feed;
    // the embedded one belongs to this process alone.
    leaseMs: config.databaseUrl ? config.leaseMs : undefined,
    retention: { ms: config.eventsRetainMs, changes: config.eventsRetainChanges },
  }, {
    onChanged: (changed) => {
      changes.publish(changed);
      events.wake();
    },
    onFailed: (part, error) => lastErrors[part] = { error, at: new Date().toISOString() },
    log,
  });
  const competing = ingest !== undefined && config.databaseUrl !== undefined;
  const stats = ingest?.stats ?? apiOnlyStats();
  // Only this process writes to the embedded database, and its writers report
  // exactly what each commit changed. A Postgres server may have other
  // writers (another instance leads): it tells through notifications, except
  // its own, which the writers reported already.
  const changes = createChangeFeed({ live: !config.databaseUrl });
  const notListening = {
    level: "warn",
    msg: "not listening for changes; cached pages are checked meanwhile",
  };
  if (config.databaseUrl && poolMode === "transaction") {
    log({ ...notListening, why: "DATABASE_POOL_MODE=transaction: a pooler cannot LISTEN" });
  }
  const listener = !config.databaseUrl || poolMode === "transaction"
    ? undefined
    : listenForChanges({
      url: config.databaseUrl,
      onChange: (origin) => {
        if (origin !== config.instanceId) changes.publish("everything");
        events.wake();
      },
      onListening: (listening) => {
        changes.setLive(listening);
        log(
          listening
            ? { level: "info", msg: "listening for changes to the database" }
            : notListening,
        );
      },
    });

  const readCache = createReadCache({ changes });
  const api = createApi({
    queries: createQueries(reader.db),
    stats,
    // A stuck ingest (stale answers) makes /readyz 503 too: the API asks stats.
    ready: () =>
      isMigrated(control.db).catch((error) => {
        databaseFailed(describeError(error));
        return false;
      }),
    migrated: () => migrated,
    lastErrors: () => lastErrors,
    log,
    corsOrigin: config.corsOrigin,
    readCache,
    events,
  });
  const server = serveHttp(
    {
      port: config.port,
      hostname: config.host,
      onListen: ({ hostname, port }) => {
        const feed = ingest
          ? (config.scoresUrl ? redactUrl(config.scoresUrl) : "built-in demo feed")
          : "none (ROLE=api)";
        const database = config.databaseUrl
          ? redactUrl(config.databaseUrl)
          : `embedded PGlite in ${config.dataDir}/pglite`;
        log({
          level: "info",
          msg: `listening on http://${hostname}:${port}; migrating the database`,
          feed,
          feedId: ingest ? config.feedId : undefined,
          database,
          instance: competing ? config.instanceId : undefined,
        });
      },
    },
    // A cached page is answered before the app routes the request.
    readCache.inFrontOf(api),
    { signal: shutdown.signal, log },
  );

  if (config.databaseUrl && config.poolMode === "session") {
    // Behind a transaction pooler prepared statements fail at random and the
    // lock cannot hold: say so before anything runs. An unreachable database
    // is retried below like always (and the lease checks again).
    await checkSessionPooling(config.databaseUrl).catch((error) => {
      if (error instanceof TransactionPoolerError) throw error;
      log({ level: "warn", msg: "cannot check for a pooler", error: describeError(error) });
    });
  }
  migrated = await migrateWithRetry(control.db, shutdown.signal, databaseFailed);
  if (migrated) {
    log({
      level: "info",
      msg: `ready in ${Math.round(performance.now() - startedAt)} ms: serving ${
        !ingest ? "only (ROLE=api)" : competing ? "and competing for the feed" : "and ingesting"
      }`,
      docs: `http://${config.host === "0.0.0.0" ? "localhost" : config.host}:${config.port}/docs`,
    });
  }
  let failure: unknown;
  const ingesting = migrated
    ? ingest?.run(shutdown.signal).catch((error) => {
      failure = error;
      shutdown.abort();
    })
    : undefined;

  await aborted(shutdown.signal);
  log({ level: "info", msg: "shutting down" });
  // Nothing below may keep the process alive: what is not committed by then is
  // replayed from the checkpoint after the restart, so a forced exit loses nothing.
  const watchdog = setTimeout(() => {
    log({ level: "error", msg: `shutdown took over ${SHUTDOWN_MS / 1000} s; exiting anyway` });
    logger.flush();
    Deno.exit(1);
  }, SHUTDOWN_MS);
  // Ingest drains within 8 s of its own.
  await ingesting;
  // Streams never end on their own: the server's shutdown would wait for them.
  events.close();
  await Promise.race([server.shutdown(), aborted(AbortSignal.timeout(1_000))]);
  await Promise.all([control.close(), reader.close(), eventsDb.close(), listener?.close()]);
  await embedded?.close();
  clearTimeout(watchdog);
  if (failure !== undefined) throw failure;
  log({ level: "info", msg: "stopped", lastEventId: stats.snapshot().lastEventId });
  logger.flush();
  Deno.exit(0);
}

/**
 * Migrates, retrying while the database cannot be reached or fails; true once
 * migrated, false when `signal` aborts first, even while a statement hangs.
 */
async function migrateWithRetry(
  db: Kysely<Database>,
  signal: AbortSignal,
  onError: (error: string) => void,
): Promise<boolean> {
  for (let delay = 250; !signal.aborted; delay = Math.min(delay * 2, 5_000)) {
    try {
      const done = await Promise.race([migrateToLatest(db).then(() => true), aborted(signal)]);
      if (done) return true;
    } catch (error) {
      onError(describeError(error));
      log({ level: "error", msg: "cannot migrate, retrying", error: describeError(error), delay });
      await Promise.race([new Promise((resolve) => setTimeout(resolve, delay)), aborted(signal)]);
    }
  }
  return false;
}

/** The statistics of an instance that never ingests (ROLE=api). */
function apiOnlyStats() {
  const stats = new IngestStats();
  stats.role = "api";
  stats.state = "stopped";
  return stats;
}

/** Fails when something listens on the port already, naming it. */
function checkPortIsFree({ host, port }: Config) {
  try {
    Deno.listen({ hostname: host, port }).close();
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    throw new Error(
      `Cannot listen on ${host}:${port}: the port is in use (EADDRINUSE), perhaps by another ` +
        "scorestream; stop it or choose another PORT",
      { cause: error },
    );
  }
}

/**
 * The start task grants write access to DATA_DIR alone (db/data_dir.ts). A `deno run`
 * without it asks at a terminal (Deno prompts); without one the error says how to grant it.
 */
async function checkCanWrite(dataDir: string) {
  const descriptor = { name: "write", path: dataDir } as const;
  if ((await Deno.permissions.query(descriptor)).state === "granted") return;
  if ((await Deno.permissions.request(descriptor)).state === "granted") return;
  throw new PermissionError(
    `Cannot write DATA_DIR "${dataDir}": this process may not write there. ` +
      `Start it with \`deno task start\`, which grants it, answer Deno's prompt with y, ` +
      `or run deno run with --allow-write=${dataDir} (see the README)`,
  );
}

/** A setting that cannot work as given: the process exits with code 2 (as for a pooler). */
class PermissionError extends Error {
  override name = "PermissionError";
}

if (import.meta.main) {
  let config: Config;
  try {
    config = parseConfig(Deno.args, Deno.env.toObject());
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(2);
  }
  try {
    await main(config);
  } catch (error) {
    log({ level: "error", msg: `Cannot run scorestream: ${describeError(error)}` });
    logger.flush();
    Deno.exit(error instanceof PermissionError || error instanceof TransactionPoolerError ? 2 : 1);
  }
}
