// The main thread's side of ingest: ingest runs in a worker of its own
// (ingest_worker.ts), so that neither a hostile feed nor an API flood can take
// the other's thread. The main thread keeps HTTP and sees ingest through
// messages: a statistics snapshot every `SNAPSHOT_MS`, what each commit
// changed, log records and the last errors.
import type { PoolMode, Retention } from "../db/mod.ts";
import type { IngestOptions } from "./create_ingest.ts";
import type { Changed } from "./shard_router.ts";
import { IngestStats } from "./stats.ts";

/** How often the ingest worker sends its statistics: how old /stats's ingest part may be. */
export const SNAPSHOT_MS = 200;

/**
 * What the ingest worker is told to do; see `startIngestThread`. The
 * options of `createIngest` that can cross to a worker, and:
 */
export interface IngestThreadOptions extends
  Pick<
    IngestOptions,
    "scoresUrl" | "feedId" | "demoRate" | "maxEventBytes" | "writers" | "databaseUrl"
  > {
  poolMode: PoolMode;
  /** This instance: named in every commit's notification and in the leadership row. */
  instanceId: string;
  /**
   * With a lease, the instance competes with its peers for the feed and
   * ingests only while it leads; without one it ingests at once (the
   * embedded database belongs to this process alone).
   */
  leaseMs?: number;
  /** How much of the change log (GET /events) to keep; it is pruned every few seconds. */
  retention?: Retention;
}

export type IngestSnapshot = ReturnType<IngestStats["snapshot"]>;

/** From the main thread to the ingest worker. */
export type ToIngest =
  | { type: "start"; options: IngestThreadOptions }
  | { type: "stop" };

/** From the ingest worker to the main thread. */
export type FromIngest =
  | { type: "snapshot"; snapshot: IngestSnapshot }
  | { type: "changed"; changed: Changed }
  | { type: "log"; record: Record<string, unknown> }
  | { type: "failed"; part: "feed" | "database"; error: string }
  | { type: "done"; error?: string };

/** The options of {@linkcode startIngestThread} besides what the worker is told. */
export interface IngestThreadHooks {
  /** Each commit's changes, for the read cache. */
  onChanged?(changed: Changed): void;
  /** The latest failure of the feed connection or of a commit, without secrets. */
  onFailed?(part: "feed" | "database", error: string): void;
  log(record: Record<string, unknown>): void;
}

/** Ingest in its own worker, seen from the main thread. */
export interface IngestThread {
  /** The latest snapshot the worker sent (its ages brought up to now). */
  readonly stats: { snapshot(): IngestSnapshot };
  /**
   * Ingests until `signal` aborts, then has the worker drain (it bounds that
   * itself) and stops it. Rejects when the worker fails: an uncaught error,
   * a heap exhausted, or a configuration that cannot work.
   */
  run(signal: AbortSignal): Promise<void>;
}

/**
 * Prepares ingest in its own worker; `run` starts it. Until the worker's
 * first snapshot, the statistics are those of an ingest not started yet.
 */
export function startIngestThread(
  options: IngestThreadOptions,
  { onChanged = () => {}, onFailed = () => {}, log }: IngestThreadHooks,
): IngestThread {
  const initial = new IngestStats();
  if (options.leaseMs !== undefined) initial.role = "standby";
  let latest = initial.snapshot();
  let receivedAt = performance.now();

  return {
    stats: {
      snapshot() {
        const age = performance.now() - receivedAt;
        return latest.checkpointAgeMs === null
          ? latest
          : { ...latest, checkpointAgeMs: latest.checkpointAgeMs + age };
      },
    },
    run(signal) {
      const worker = new Worker(new URL("./ingest_worker.ts", import.meta.url), {
        type: "module",
        name: "scorestream-ingest",
      });
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const stop = () => worker.postMessage({ type: "stop" } satisfies ToIngest);
      signal.addEventListener("abort", stop, { once: true });
      const end = (error?: Error) => {
        signal.removeEventListener("abort", stop);
        worker.terminate();
        if (error) reject(error);
        else resolve();
      };
      worker.onmessage = ({ data }: MessageEvent<FromIngest>) => {
        switch (data.type) {
          case "snapshot":
            latest = data.snapshot;
            receivedAt = performance.now();
            break;
          case "changed":
            onChanged(data.changed);
            break;
          case "log":
            log(data.record);
            break;
          case "failed":
            onFailed(data.part, data.error);
            break;
          case "done":
            end(data.error === undefined ? undefined : new Error(data.error));
            break;
        }
      };
      worker.onerror = (event) => {
        // Handled here: the process stops through `run`'s rejection, with its log line.
        event.preventDefault();
        end(new Error(`the ingest worker failed: ${event.message}`));
      };
      worker.postMessage({ type: "start", options } satisfies ToIngest);
      if (signal.aborted) stop();
      return promise;
    },
  };
}
