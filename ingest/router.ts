import type { QuarantineRow } from "../db/mod.ts";
import type { Ack, Batch, WriterPool } from "../workers/mod.ts";
import { shardOf } from "./shard.ts";
import type { FeedChunk } from "./sse_connection.ts";
import type { IngestStats } from "./stats.ts";
import { validateScore } from "./validate.ts";

/** How the router reaches the writers and reports progress. */
export interface RouterOptions {
  pool: WriterPool;
  stats: IngestStats;
  /** Unacknowledged events above which ingest stops reading the feed. */
  maxPendingEvents?: number;
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
export interface Router {
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
export function createRouter(
  { pool, stats, maxPendingEvents = 100_000, onCommitted, onChanged }: RouterOptions,
): Router {
  const rounds: Round[] = [];
  const roundOf = new Map<number, Round>();
  // Kept only when someone listens; the pool keeps these batches until they
  // are acknowledged anyway.
  const changedBy = new Map<number, Batch>();
  let nextBatchId = 1;
  let pending = 0;
  let waiters: (() => void)[] = [];

  function settle() {
    let committed: string | undefined;
    while (rounds.length > 0 && rounds[0].remaining === 0) committed = rounds.shift()!.lastEventId;
    if (committed !== undefined) onCommitted(committed);
    if (pending <= maxPendingEvents || rounds.length === 0) {
      for (const wake of waiters) wake();
      waiters = [];
    }
  }

  return {
    route({ events, lastEventId }) {
      const receivedAt = performance.now();
      const round: Round = { remaining: 0, lastEventId: detached(lastEventId), receivedAt };
      const parts: (Columns | undefined)[] = new Array(pool.count);
      const part = (writer: number) =>
        parts[writer] ??= { names: [], exams: [], scores: [], quarantine: [] };
      stats.received += events.length;
      for (const event of events) {
        if (event.type !== "score") {
          stats.ignored++;
          continue;
        }
        const result = validateScore(event.data);
        if (result.ok) {
          const { studentId, exam, score } = result.score;
          const columns = part(shardOf(studentId, pool.count));
          columns.names.push(studentId);
          columns.exams.push(exam);
          columns.scores.push(score);
        } else {
          stats.reject(result.rejection.reason);
          part(shardOf(event.data, pool.count)).quarantine.push(detached({
            eventId: event.lastEventId || null,
            reason: `${result.rejection.reason}: ${result.rejection.message}`,
            raw: event.data.slice(0, RAW_LIMIT).replaceAll("\0", "\uFFFD"),
          }));
        }
      }
      parts.forEach((columns, writer) => {
        if (!columns) return;
        const id = nextBatchId++;
        roundOf.set(id, round);
        round.remaining++;
        pending += columns.names.length + columns.quarantine.length;
        const batch: Batch = {
          id,
          names: columns.names,
          exams: new Int32Array(columns.exams),
          scores: new Float64Array(columns.scores),
          quarantine: columns.quarantine,
        };
        if (onChanged && batch.names.length > 0) changedBy.set(id, batch);
        pool.send(writer, batch);
      });
      rounds.push(round);
      settle();
      if (pending > maxPendingEvents) return new Promise((resolve) => waiters.push(resolve));
    },
    acked(ack) {
      const now = performance.now();
      stats.committed(ack.applied, ack.commitMs);
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
