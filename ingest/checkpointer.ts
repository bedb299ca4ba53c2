import type { Kysely } from "kysely";
import { aborted } from "../aborted.ts";
import {
  classifyError,
  type Database,
  describeError,
  type Fence,
  saveCheckpoint,
} from "../db/mod.ts";

/** Keeps the stored checkpoint of one feed up to date without blocking ingest. */
export interface Checkpointer {
  /** The checkpoint may move to this id; stored soon, latest value wins. */
  update(lastEventId: string): void;
  /**
   * Stores the latest value (retrying until `signal` aborts) and stops. Once
   * `signal` aborts it returns, even while a write still hangs.
   */
  close(signal?: AbortSignal): Promise<void>;
}

/**
 * Writes the checkpoint with at most one write in flight: updates that arrive
 * meanwhile collapse into the next write. A failed write is retried, so a
 * database outage only delays the checkpoint; replay after a crash is
 * idempotent, so a stale checkpoint costs time, never correctness. With
 * `fence`, a write Postgres refuses as fenced stops it for good (`onFenced`).
 */
export function createCheckpointer(
  { db, feed, fence, onSaved, onFenced = () => {}, log = () => {}, retryMs = 500 }: {
    db: Kysely<Database>;
    feed: string;
    fence?: Fence;
    onSaved?(lastEventId: string): void;
    onFenced?(error: string): void;
    log?(record: Record<string, unknown>): void;
    retryMs?: number;
  },
): Checkpointer {
  let latest: string | undefined;
  let saved: string | undefined;
  let writing: Promise<void> | undefined;
  let stop: AbortSignal | undefined;
  let fenced = false;

  async function flush() {
    while (latest !== saved && !stop?.aborted && !fenced) {
      const id = latest!;
      try {
        await saveCheckpoint(db, feed, id, fence);
        saved = id;
        onSaved?.(id);
      } catch (error) {
        if (classifyError(error) === "fenced") {
          fenced = true;
          onFenced(describeError(error));
          return;
        }
        log({ level: "warn", msg: "cannot save the checkpoint", error: describeError(error) });
        await new Promise((resolve) => setTimeout(resolve, retryMs));
      }
    }
  }

  function kick() {
    writing ??= flush().finally(() => {
      writing = undefined;
    });
  }

  return {
    update(lastEventId) {
      latest = lastEventId;
      kick();
    },
    async close(signal) {
      stop = signal;
      kick();
      if (!signal) return await writing;
      // A write on a silent network would hold the shutdown up for good.
      await Promise.race([writing, aborted(signal)]);
    },
  };
}
