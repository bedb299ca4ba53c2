import {
  applyScores,
  classifyError,
  type Db,
  describeError,
  type Fence,
  ping,
  type QuarantineRow,
  type ScoreColumns,
} from "../db/mod.ts";
import { coalesce } from "./coalesce.ts";
import type { Ack, Batch, Retry, Skipped } from "./protocol.ts";
import { StudentKeys } from "./student_keys.ts";

/** What a writer needs; `connect` is called again after a connection is abandoned. */
export interface WriterOptions {
  writer: number;
  connect(): Db;
  onAck(ack: Ack): void;
  onRetry?(retry: Retry): void;
  /** A refused quarantine entry that not even its escaped excerpt could be stored for. */
  onSkipped?(skipped: Skipped): void;
  /** Carried by every commit; see `applyScores`. */
  fence?: Fence;
  /** Named in every commit's notification. */
  origin?: string;
  /**
   * Postgres refused a commit of `fence`'s epoch: the writer drops what it
   * holds and commits nothing more (a newer leader replays it).
   */
  onFenced?(error: string): void;
  /** Queued batches are committed together up to about this many events. */
  maxBatchEvents?: number;
  /** ... and up to about this many characters of studentIds and quarantine. */
  maxBatchChars?: number;
  /**
   * The bytes the remembered dictionary keys of students may take (see
   * `StudentKeys`); the start task caps the writer's heap at 96 MiB.
   */
  maxKnownStudentBytes?: number;
  /** A statement still running after this long is abandoned with its connection. */
  deadlineMs?: number;
  initialRetryMs?: number;
  maxRetryMs?: number;
  random?: () => number;
}

/** A writer: batches in, commits and acknowledgements out, in arrival order. */
export interface Writer {
  /**
   * Opens the connection before the first batch needs it. Resolves once it is
   * open or could not be opened (the first commit then retries as usual).
   */
  connect(): Promise<void>;
  enqueue(batch: Batch): void;
  /** Resolves once everything enqueued so far is committed. */
  drained(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Applies batches in arrival order, each group of queued batches in one
 * transaction, and acknowledges them once committed. Transient failures are
 * retried with capped exponential backoff for as long as it takes; permanent
 * ones (a role without write rights) are retried at the cap and reported as
 * such, since only an operator can fix them and nothing accepted may be lost.
 * Rows and quarantine entries that Postgres itself refuses are bisected out:
 * a refused row is quarantined, a refused quarantine entry is stored as a
 * short escaped excerpt or, if even that is refused, skipped and reported. So
 * one bad event never wedges the writer. A fenced commit stops the writer.
 */
export function createWriter({
  writer,
  connect,
  onAck,
  onRetry = () => {},
  onSkipped = () => {},
  fence,
  origin,
  onFenced = () => {},
  maxBatchEvents = 50_000,
  maxBatchChars = 2_000_000,
  maxKnownStudentBytes = 16 * 1024 * 1024,
  deadlineMs = 15_000,
  initialRetryMs = 100,
  maxRetryMs = 5_000,
  random = Math.random,
}: WriterOptions): Writer {
  let db = connect();
  // The dictionary keys of the students this writer has committed; a writer
  // owns its students, so no other writer adds them.
  const keys = new StudentKeys(maxKnownStudentBytes);
  const queue: Batch[] = [];
  let running: Promise<void> | undefined;
  let closed = false;
  let fenced = false;

  async function run() {
    while (queue.length > 0 && !fenced) {
      let events = 0;
      let chars = 0;
      let take = 0;
      do {
        events += queue[take].names.length;
        chars += queue[take++].chars;
      } while (take < queue.length && events < maxBatchEvents && chars < maxBatchChars);
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
      await withRetry(() => applyScores(db.db, writer, rows, quarantine, keys, { fence, origin }));
      return 0;
    } catch (error) {
      if (error instanceof FencedError) throw error;
      // Only data errors escape withRetry: find what Postgres refuses.
      const n = rows.names.length;
      if (n > 0 && quarantine.length > 0) {
        return await commit(rows, []) + await commit(empty(), quarantine);
      }
      if (n > 1) {
        return await commit(slice(rows, 0, n >> 1), []) + await commit(slice(rows, n >> 1, n), []);
      }
      if (quarantine.length > 1) {
        const half = quarantine.length >> 1;
        return await commit(rows, quarantine.slice(0, half)) +
          await commit(rows, quarantine.slice(half));
      }
      const reason = `refused_by_database: ${describeError(error)}`.slice(0, 1024);
      if (n === 1) {
        const raw = JSON.stringify({
          exam: rows.exams[0],
          studentId: rows.names[0],
          score: rows.scores[0],
        });
        await storeRefused({ eventId: null, reason, raw });
        return 1;
      }
      // A quarantine entry itself: JSON escapes whatever Postgres text cannot hold.
      const { eventId, raw } = quarantine[0];
      const excerpt = { eventId: eventId?.slice(0, 256) ?? null, raw: raw.slice(0, 256) };
      await storeRefused({ eventId: null, reason, raw: JSON.stringify(excerpt) });
      return 0;
    }
  }

  async function storeRefused(row: QuarantineRow) {
    try {
      await withRetry(() => applyScores(db.db, writer, empty(), [row], keys, { fence, origin }));
    } catch (error) {
      if (error instanceof FencedError) throw error;
      onSkipped({ error: describeError(error), raw: row.raw });
    }
  }

  async function withRetry(attempt: () => Promise<void>) {
    for (let n = 1;; n++) {
      try {
        await withDeadline(attempt());
        return;
      } catch (error) {
        const kind = classifyError(error);
        if (kind === "data") throw error;
        if (kind === "fenced") throw new FencedError(error);
        const cap = kind === "permanent"
          ? maxRetryMs
          : Math.min(maxRetryMs, initialRetryMs * 2 ** Math.min(n - 1, 20));
        const delayMs = Math.round(cap / 2 + random() * cap / 2);
        onRetry({
          attempt: n,
          error: describeError(error),
          delayMs,
          permanent: kind === "permanent",
        });
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
    running ??= run().catch(async (error) => {
      if (error instanceof FencedError) {
        fenced = true;
        queue.length = 0;
        onFenced(describeError(error.cause));
        return;
      }
      // Only a bug gets here (withRetry handles every database error): not
      // again at once, which would spin and grow garbage without end.
      if (closed) return;
      onRetry({ attempt: 1, error: describeError(error), delayMs: maxRetryMs, permanent: true });
      await new Promise((resolve) => setTimeout(resolve, maxRetryMs));
    }).finally(() => {
      running = undefined;
      if (queue.length > 0 && !closed) kick();
    });
  }

  return {
    async connect() {
      try {
        await ping(db);
      } catch {
        // Reported by the first commit, which retries.
      }
    },
    enqueue(batch) {
      if (fenced) return;
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

class FencedError extends Error {
  constructor(cause: unknown) {
    super("Cannot commit: this instance no longer leads the feed", { cause });
  }
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
