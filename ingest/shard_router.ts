import type { QuarantineRow } from "../db/mod.ts";
import type { Ack, Batch, WriterPool } from "../workers/mod.ts";
import { shardOf } from "./shard.ts";
import type { FeedChunk } from "./sse_connection.ts";
import { MAX_ID_BYTES, type SseEvent } from "./sse_parser.ts";
import type { IngestStats } from "./stats.ts";
import { validateScore } from "./validate.ts";

/** How the router reaches the writers and reports progress. */
export interface ShardRouterOptions {
  pool: WriterPool;
  stats: IngestStats;
  /** Unacknowledged events above which ingest stops reading the feed. */
  maxPendingEvents?: number;
  /** ... and unacknowledged characters (`Batch.chars`): what long ids and excerpts weigh. */
  maxPendingChars?: number;
  /** The checkpoint may move to this id: it and every event before it are committed. */
  onCommitted(lastEventId: string): void;
  /** Called after each commit with the students and exams whose results it may have changed. */
  onChanged?(changed: Changed): void;
}

/** The students and exams a commit wrote results for; a student may be listed more than once. */
export interface Changed {
  students: string[];
  exams: Set<number>;
}

/** Routes parsed feed chunks to the writers and tracks what is committed. */
export interface ShardRouter {
  route(chunk: FeedChunk): void | Promise<void>;
  acked(ack: Ack): void;
  /** Resolves when everything routed so far is committed. */
  settled(): Promise<void>;
}

const RAW_LIMIT = 1024;

interface Round {
  remaining: number;
  lastEventId: string;
  receivedAt: number;
}

interface Columns {
  names: string[];
  chars: number;
  exams: number[];
  scores: number[];
  quarantine: QuarantineRow[];
}

/**
 * Validates each chunk's events and sends each writer its share as one batch:
 * one postMessage per writer per chunk, never one per event. A chunk is a
 * round; the checkpoint moves past a round once its batches, and those of
 * every earlier round, are acknowledged. When too many events are pending the
 * returned promise holds the feed reader back: TCP backpressure, bounded memory.
 */
export function createShardRouter(
  {
    pool,
    stats,
    maxPendingEvents = 100_000,
    maxPendingChars = 8_000_000,
    onCommitted,
    onChanged,
  }: ShardRouterOptions,
): ShardRouter {
  const rounds: Round[] = [];
  const roundOf = new Map<number, Round>();
  // Kept only when someone listens; the pool keeps these batches until they
  // are acknowledged anyway.
  const changedBy = new Map<number, Batch>();
  let nextBatchId = 1;
  let pending = 0;
  let pendingChars = 0;
  let waiters: (() => void)[] = [];

  function settle() {
    let committed: string | undefined;
    while (rounds.length > 0 && rounds[0].remaining === 0) committed = rounds.shift()!.lastEventId;
    if (committed !== undefined) onCommitted(committed);
    if ((pending <= maxPendingEvents && pendingChars <= maxPendingChars) || rounds.length === 0) {
      for (const wake of waiters) wake();
      waiters = [];
    }
  }

  return {
    route({ events, lastEventId }) {
      const receivedAt = performance.now();
      if (pending === 0) stats.progressAt = receivedAt;
      const round: Round = { remaining: 0, lastEventId: detached(lastEventId), receivedAt };
      const parts: (Columns | undefined)[] = new Array(pool.count);
      const part = (writer: number) =>
        parts[writer] ??= { names: [], chars: 0, exams: [], scores: [], quarantine: [] };
      const quarantine = (event: SseEvent, reason: string, message: string) => {
        stats.reject(reason);
        const row = detached({
          eventId: event.longId ?? (event.lastEventId || null),
          // Postgres text holds no NUL; JSON.parse's messages quote the data.
          reason: `${reason}: ${message}`.replaceAll("\0", "\uFFFD"),
          raw: event.data.slice(0, RAW_LIMIT).replaceAll("\0", "\uFFFD"),
        });
        const columns = part(shardOf(event.data, pool.count));
        columns.quarantine.push(row);
        columns.chars += (row.eventId?.length ?? 0) + row.reason.length + row.raw.length;
      };
      stats.received += events.length;
      for (const event of events) {
        // Of any type: what it was is not known for sure.
        if (event.tooLarge !== undefined) {
          stats.oversized++;
          quarantine(
            event,
            "too_large",
            `Cannot accept an event of ${event.tooLarge} characters: larger than the limit; ` +
              `its first ${event.data.length} are kept`,
          );
          continue;
        }
        if (event.type !== "score") {
          stats.ignored++;
          continue;
        }
        if (event.longId !== undefined) {
          quarantine(
            event,
            "invalid_id",
            `Cannot accept an id longer than ${MAX_ID_BYTES} UTF-8 bytes: not adopted as the ` +
              `resume point; its first ${event.longId.length} characters are kept`,
          );
          continue;
        }
        const result = validateScore(event.data);
        if (result.ok) {
          const { studentId, exam, score } = result.score;
          const columns = part(shardOf(studentId, pool.count));
          columns.names.push(studentId);
          columns.chars += studentId.length;
          columns.exams.push(exam);
          columns.scores.push(score);
        } else {
          quarantine(event, result.rejection.reason, result.rejection.message);
        }
      }
      parts.forEach((columns, writer) => {
        if (!columns) return;
        const id = nextBatchId++;
        roundOf.set(id, round);
        round.remaining++;
        pending += columns.names.length + columns.quarantine.length;
        pendingChars += columns.chars;
        const batch: Batch = {
          id,
          names: columns.names,
          chars: columns.chars,
          exams: new Int32Array(columns.exams),
          scores: new Float64Array(columns.scores),
          quarantine: columns.quarantine,
        };
        if (onChanged && batch.names.length > 0) changedBy.set(id, batch);
        pool.send(writer, batch);
      });
      rounds.push(round);
      settle();
      if (pending > maxPendingEvents || pendingChars > maxPendingChars) {
        return new Promise((resolve) => waiters.push(resolve));
      }
    },
    acked(ack) {
      const now = performance.now();
      stats.committed(ack.applied, ack.commitMs, now);
      if (ack.refused > 0) stats.reject("refused_by_database", ack.refused);
      const students: string[][] = [];
      const exams = new Set<number>();
      for (const id of ack.ids) {
        const batch = changedBy.get(id);
        if (batch) {
          changedBy.delete(id);
          students.push(batch.names);
          // A feed sends an exam's events together: skip the repeats cheaply.
          let last = NaN;
          for (const exam of batch.exams) if (exam !== last) exams.add(last = exam);
        }
        const round = roundOf.get(id);
        if (!round) continue;
        roundOf.delete(id);
        round.remaining--;
        stats.lag(now - round.receivedAt, now);
      }
      if (students.length > 0) onChanged?.({ students: students.flat(), exams });
      pending = pool.pending().reduce((a, b) => a + b, 0);
      pendingChars = pool.pendingChars();
      settle();
    },
    async settled() {
      while (rounds.length > 0) await new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}

/**
 * The value with strings of its own. In V8 a slice of a string, and a template
 * built from one, keep the whole string alive: a 1 KiB excerpt of a 1 MiB
 * event held the MiB until its batch committed (100 MiB per 100 such events),
 * and an event id held the 64 KiB chunk it was parsed from.
 */
function detached<T>(value: T): T {
  return JSON.parse(JSON.stringify(value));
}
