import type { Kysely } from "kysely";
import { aborted } from "../aborted.ts";
import { type Database, type Fence, loadCheckpoint, type PoolMode } from "../db/mod.ts";
import { startWriters } from "../workers/mod.ts";
import { createCheckpointer } from "./checkpointer.ts";
import { createDemoFeed } from "./demo_feed.ts";
import { type Changed, createShardRouter } from "./shard_router.ts";
import { consumeFeed } from "./sse_connection.ts";
import { IngestStats } from "./stats.ts";

/** The options of {@linkcode createIngest}. */
export interface IngestOptions {
  /** The SSE feed; undefined: the built-in demo feed. */
  scoresUrl?: string;
  /** The key of the feed's checkpoint. */
  feedId: string;
  /** Events per second of the built-in feed. */
  demoRate: number;
  maxEventBytes: number;
  /** Writer workers. */
  writers: number;
  /** Where the writers connect. */
  databaseUrl: string;
  poolMode?: PoolMode;
  /** This instance, named in the notification of every commit. */
  origin?: string;
  /** Where the checkpoint is read and stored. */
  db: Kysely<Database>;
  /** How long stopping may take: draining the writers and storing the checkpoint. */
  drainMs?: number;
  /** Called after each commit with what it may have changed. */
  onChanged?(changed: Changed): void;
  /** Each failure of the feed connection, without secrets. */
  onFeedError?(error: string): void;
  /** Each failed attempt of a writer to commit. */
  onDatabaseError?(error: string): void;
  log(record: Record<string, unknown>): void;
}

/** The ingest pipeline of one feed, and the statistics it keeps. */
export interface Ingest {
  readonly stats: IngestStats;
  /**
   * Resumes from the stored checkpoint and reads the feed into the writers
   * until `signal` aborts; then stops reading and waits for the writers to
   * commit what they were sent and for the checkpoint to be stored, no longer
   * than `drainMs` in all. Whatever is not committed by then is replayed after
   * the restart.
   *
   * With `fence`, every commit carries it; once Postgres refuses one as
   * fenced, run stops at once without draining (another leader replays it).
   */
  run(signal: AbortSignal, fence?: Fence): Promise<void>;
}

/**
 * Wires the feed connection, the shard router, the writer pool and the
 * checkpointer, and keeps their statistics in one `IngestStats`.
 */
export function createIngest({
  scoresUrl,
  feedId,
  demoRate,
  maxEventBytes,
  writers,
  databaseUrl,
  poolMode,
  origin,
  db,
  drainMs = 8_000,
  onChanged,
  onFeedError = () => {},
  onDatabaseError = () => {},
  log,
}: IngestOptions): Ingest {
  const stats = new IngestStats();

  async function run(stop: AbortSignal, fence?: Fence) {
    const fenced = new AbortController();
    const onFenced = (error: string) => {
      stats.fenced++;
      if (fenced.signal.aborted) return;
      log({ level: "warn", msg: "fenced: another instance leads the feed; stopping", error });
      fenced.abort();
    };
    const signal = AbortSignal.any([stop, fenced.signal]);
    const checkpoint = await loadCheckpoint(db, feedId);
    stats.lastEventId = checkpoint ?? null;
    const checkpointer = createCheckpointer({
      db,
      feed: feedId,
      fence,
      onFenced,
      log,
      onSaved: (id) => {
        stats.lastEventId = id;
        stats.checkpointSavedAt = performance.now();
      },
    });
    const pool = startWriters({
      count: writers,
      databaseUrl,
      poolMode,
      fence,
      origin,
      onFenced: (_writer, error) => onFenced(error),
      onAck: (writer, ack) => {
        stats.writerCommitted(writer);
        router.acked(ack);
      },
      onRetry: (writer, retry) => {
        stats.writerRetries++;
        onDatabaseError(retry.error);
        stats.writerFailed(writer, retry.error, retry.permanent);
        log({
          level: retry.permanent ? "error" : "warn",
          msg: "writer retrying",
          writer,
          ...retry,
        });
      },
      onSkipped: (writer, skipped) => {
        log({ level: "error", msg: "quarantine refused an event; skipped", writer, ...skipped });
      },
      onRestart: (writer, error) => {
        stats.writerRestarts++;
        log({ level: "error", msg: "writer died and was replaced", writer, error });
      },
    });
    stats.queueDepth = () => pool.pending();
    // Events read before a writer can take them only wait in its queue.
    await Promise.race([pool.ready(), aborted(signal)]);
    const router = createShardRouter({
      pool,
      stats,
      onCommitted: (id) => checkpointer.update(id),
      onChanged,
    });
    const reading = consumeFeed({
      url: scoresUrl ?? "http://demo.invalid/scores",
      fetch: scoresUrl ? undefined : fetchFrom(createDemoFeed({ rate: demoRate })),
      lastEventId: checkpoint,
      signal,
      maxEventBytes,
      onChunk: (chunk) => router.route(chunk),
      onStatus: (status) => {
        if (status.lastError !== null && status.state === "backoff") onFeedError(status.lastError);
        stats.state = status.state;
        stats.reconnects = status.reconnects;
      },
      log,
    });

    // Rejects at once if reading fails for good (what onChunk throws).
    await Promise.race([reading, aborted(signal)]);
    // Nothing of a fenced term can commit any more: no drain.
    const deadline = AbortSignal.any([AbortSignal.timeout(drainMs), fenced.signal]);
    try {
      // The reader waits for the writers when their queues are full, so with
      // Postgres away it would wait for good.
      await Promise.race([reading, aborted(deadline)]);
      await Promise.race([router.settled(), aborted(deadline)]);
      await pool.close(deadline);
      await checkpointer.close(deadline);
    } finally {
      stats.queueDepth = () => [];
    }
  }

  return { stats, run };
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
