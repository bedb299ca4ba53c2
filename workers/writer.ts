import {
  applyScores,
  classifyError,
  type Db,
  describeError,
  type QuarantineRow,
  type ScoreColumns,
} from "../db/mod.ts";
import { coalesce } from "./coalesce.ts";
import type { Ack, Batch, Retry } from "./protocol.ts";

/** What a writer needs; `connect` is called again after a connection is abandoned. */
export interface WriterOptions {
  writer: number;
  connect(): Db;
  onAck(ack: Ack): void;
  onRetry?(retry: Retry): void;
  /** Queued batches are committed together up to about this many events. */
  maxBatchEvents?: number;
  /**
   * Students whose dictionary keys are remembered; past it, the memory starts
   * over. 200k keys of 15-40 characters take ~14-18 MiB of the writer's heap,
   * which the start task caps at 96 MiB.
   */
  maxKnownStudents?: number;
  /** A statement still running after this long is abandoned with its connection. */
  deadlineMs?: number;
  initialRetryMs?: number;
  maxRetryMs?: number;
  random?: () => number;
}

/** A writer: batches in, commits and acknowledgements out, in arrival order. */
export interface Writer {
  enqueue(batch: Batch): void;
  /** Resolves once everything enqueued so far is committed. */
  drained(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Applies batches in arrival order, each group of queued batches in one
 * transaction, and acknowledges them once committed. Transient failures are
 * retried with capped exponential backoff for as long as it takes; rows that
 * Postgres itself refuses are bisected out and quarantined, so one bad row
 * never wedges the writer.
 */
export function createWriter({
  writer,
  connect,
  onAck,
  onRetry = () => {},
  maxBatchEvents = 50_000,
  maxKnownStudents = 200_000,
  deadlineMs = 15_000,
  initialRetryMs = 100,
  maxRetryMs = 5_000,
  random = Math.random,
}: WriterOptions): Writer {
  let db = connect();
  // The dictionary keys of the students this writer has committed; a writer
  // owns its students, so no other writer adds them.
  let keys = new Map<string, number>();
  const queue: Batch[] = [];
  let running: Promise<void> | undefined;
  let closed = false;

  async function run() {
    while (queue.length > 0) {
      let events = 0;
      let take = 0;
      do events += queue[take++].names.length; while (
        take < queue.length && events < maxBatchEvents
      );
      const batches = queue.slice(0, take);
      const started = performance.now();
      const rows = coalesce(batches);
      const refused = await commit(rows, batches.flatMap((b) => b.quarantine));
      queue.splice(0, take);
      onAck({
        ids: batches.map((b) => b.id),
        applied: events - refused,
        commitMs: performance.now() - started,
        refused,
      });
    }
  }

  /** Commits rows and quarantine; returns how many rows Postgres refused. */
  async function commit(rows: ScoreColumns, quarantine: QuarantineRow[]): Promise<number> {
    try {
      if (keys.size > maxKnownStudents) keys = new Map();
      await withRetry(() => applyScores(db.db, writer, rows, quarantine, keys));
      return 0;
    } catch (error) {
      // Only data errors escape withRetry.
      if (rows.names.length <= 1) {
        const refused: QuarantineRow[] = rows.names.map((name, i) => ({
          eventId: null,
          reason: `refused_by_database: ${describeError(error)}`,
          raw: JSON.stringify({ exam: rows.exams[i], studentId: name, score: rows.scores[i] }),
        }));
        await withRetry(() => applyScores(db.db, writer, empty(), [...quarantine, ...refused]));
        return rows.names.length;
      }
      const half = rows.names.length >> 1;
      return await commit(slice(rows, 0, half), quarantine) +
        await commit(slice(rows, half, rows.names.length), []);
    }
  }

  async function withRetry(attempt: () => Promise<void>) {
    for (let n = 1;; n++) {
      try {
        await withDeadline(attempt());
        return;
      } catch (error) {
        if (classifyError(error) === "data") throw error;
        const cap = Math.min(maxRetryMs, initialRetryMs * 2 ** Math.min(n - 1, 20));
        const delayMs = Math.round(cap / 2 + random() * cap / 2);
        onRetry({ attempt: n, error: describeError(error), delayMs });
        if (error instanceof DeadlineError) {
          db.close().catch(() => {});
          db = connect();
        }
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (closed) throw new Error(`Writer ${writer} closed while retrying`, { cause: error });
      }
    }
  }

  function withDeadline(work: Promise<void>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(deadlineMs)), deadlineMs);
    });
    return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
  }

  function kick() {
    running ??= run().finally(() => {
      running = undefined;
      if (queue.length > 0 && !closed) kick();
    });
  }

  return {
    enqueue(batch) {
      queue.push(batch);
      kick();
    },
    async drained() {
      while (running) await running;
    },
    async close() {
      closed = true;
      await running?.catch(() => {});
      await db.close();
    },
  };
}

class DeadlineError extends Error {
  constructor(ms: number) {
    super(`Cannot commit within ${ms} ms: statement abandoned`);
  }
}

function empty(): ScoreColumns {
  return { names: [], exams: [], scores: [] };
}

function slice({ names, exams, scores }: ScoreColumns, from: number, to: number): ScoreColumns {
  return {
    names: names.slice(from, to),
    exams: exams.slice(from, to),
    scores: scores.slice(from, to),
  };
}
