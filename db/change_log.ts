import { type Kysely, sql } from "kysely";
import { readErrorCode } from "./errors.ts";
import { createQueries, type ResultScope } from "./queries.ts";
import { ReadError } from "./read_error.ts";
import type { Result } from "./result.ts";
import type { Database } from "./schema.ts";

/**
 * The changes one transaction made to results (migration 0008): aligned
 * columns, sorted by (student key, exam). `students` holds dictionary keys;
 * `ChangeLog.names` turns them into studentIds.
 */
export interface LoggedTransaction {
  xid: bigint;
  students: number[];
  exams: number[];
  /** As Postgres prints them: the shortest text that reads back as the same double. */
  scores: string[];
}

/** One read of the change log. */
export interface ChangePage {
  /** Random per database: a cursor of another database does not resume here. */
  stream: string;
  /** Every transaction at or below this may have been pruned. */
  prunedThrough: bigint;
  /**
   * The oldest transaction still running when the page was read: no row can
   * appear below it any more, and the page holds every row below it after
   * `after`, unless `full`.
   */
  horizon: bigint;
  /** The rows after `after` and below `horizon`, in xid order. */
  transactions: LoggedTransaction[];
  /** More rows may follow below the horizon (a limit stopped the read). */
  full: boolean;
}

/**
 * What a snapshot saw (`pg_current_snapshot()`): transactions below `xmin`,
 * and those below `xmax` not in `running`, had committed (or aborted).
 */
export interface SnapshotBounds {
  xmin: bigint;
  xmax: bigint;
  running: Set<bigint>;
}

/** Whether a change of transaction `xid` is in what the snapshot saw. */
export const visibleIn = (snapshot: SnapshotBounds, xid: bigint) =>
  xid < snapshot.xmin || (xid < snapshot.xmax && !snapshot.running.has(xid));

/** Reads of the change log and the snapshots that go with it. */
export interface ChangeLog {
  /**
   * The rows with an xid above `after` (one statement): at most `limit`, and
   * none after the one that brings the changes read to `maxChanges`.
   */
  read(after: bigint, limit: number, maxChanges: number): Promise<ChangePage>;
  /** The studentIds of dictionary keys. */
  names(keys: Iterable<number>): Promise<Map<number, string>>;
  /**
   * Runs `use` inside one REPEATABLE READ, READ ONLY transaction: `read`
   * gives batches of the results of `scope` as of `bounds`, however long
   * `use` takes between them.
   */
  snapshot<T>(
    use: (
      bounds: SnapshotBounds,
      read: (scope: ResultScope, limit: number) => Promise<Result[]>,
    ) => Promise<T>,
  ): Promise<T>;
}

/** Reads over `db`; errors are thrown as `ReadError`. */
export function createChangeLog(db: Kysely<Database>): ChangeLog {
  return {
    read: (after, limit, maxChanges) => reading(readPage(db, after, limit, maxChanges)),
    names: (keys) => reading(readNames(db, keys)),
    snapshot(use) {
      return db.transaction().setIsolationLevel("repeatable read").setAccessMode("read only")
        .execute(async (trx) => {
          // The first statement takes the transaction's snapshot: this one.
          const { rows: [{ snapshot, recovery }] } = await reading(
            sql<{ snapshot: string; recovery: boolean }>`
              SELECT pg_current_snapshot()::text AS snapshot, pg_is_in_recovery() AS recovery`
              .execute(trx),
          );
          // On a hot standby the snapshot lists no running transactions (Postgres keeps
          // them apart there, and pg_current_snapshot shows only the list that is empty):
          // only those below xmin are known to be in it. Later ones are sent again rather
          // than lost.
          const bounds = parseSnapshot(snapshot);
          if (recovery) bounds.xmax = bounds.xmin;
          const queries = createQueries(trx, { maxConcurrentReads: 1 });
          return await use(
            bounds,
            (scope, limit) => queries.results(scope, limit),
          );
        });
    },
  };
}

async function reading<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    throw error instanceof ReadError
      ? error
      : new ReadError(readErrorCode(error), { cause: error });
  }
}

async function readPage(
  db: Kysely<Database>,
  after: bigint,
  limit: number,
  maxChanges: number,
): Promise<ChangePage> {
  const { rows } = await sql<{
    stream: string;
    pruned: string;
    horizon: string;
    available: number | null;
    xid: string | null;
    students: string | null;
    exams: string | null;
    scores: string | null;
  }>`
    WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon),
    page AS (
      SELECT r.xid, r.students, r.exams, r.scores,
             sum(r.n) OVER (ORDER BY r.xid) - r.n AS earlier, count(*) OVER () AS available
      FROM (
        SELECT * FROM result_changes
        WHERE xid > ${String(after)}::xid8 AND xid < (SELECT horizon FROM h)
        ORDER BY xid LIMIT ${limit}
      ) r
    )
    SELECT w.stream, w.pruned_through::text AS pruned, h.horizon::text AS horizon,
           p.available::int4 AS available, p.xid::text AS xid,
           -- As text lists: split in JS, they cost a fraction of postgres.js's array parser.
           array_to_string(p.students, ',') AS students, array_to_string(p.exams, ',') AS exams,
           array_to_string(p.scores, ',') AS scores
    FROM result_changes_window w CROSS JOIN h
    LEFT JOIN page p ON p.earlier < ${maxChanges}
    ORDER BY p.xid`.execute(db);
  const [first] = rows;
  const transactions = rows.filter((r) => r.xid !== null).map((r) => ({
    xid: BigInt(r.xid!),
    students: r.students!.split(",").map(Number),
    exams: r.exams!.split(",").map(Number),
    scores: r.scores!.split(","),
  }));
  const available = first.available ?? 0;
  return {
    stream: first.stream,
    prunedThrough: BigInt(first.pruned),
    horizon: BigInt(first.horizon),
    transactions,
    full: transactions.length < available || available === limit,
  };
}

async function readNames(db: Kysely<Database>, keys: Iterable<number>) {
  const { rows } = await sql<{ id: number; name: string }>`
    SELECT id, name FROM students WHERE id = ANY (${`{${[...keys].join(",")}}`}::int4[])`
    .execute(db);
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** `xmin:xmax:xip,...`, the text form of pg_snapshot. */
export function parseSnapshot(text: string): SnapshotBounds {
  const [xmin, xmax, running = ""] = text.split(":");
  return {
    xmin: BigInt(xmin),
    xmax: BigInt(xmax),
    running: new Set(running ? running.split(",").map(BigInt) : []),
  };
}

/** How much of the change log to keep; see `pruneChanges`. */
export interface Retention {
  /** Transactions that began at least this long ago go. */
  ms: number;
  /** Transactions older than the newest this many changes go. */
  changes: number;
}

/**
 * Deletes the transactions older than `retention.ms` or beyond the newest
 * `retention.changes` changes, never one at or above the oldest transaction
 * still running, and moves `pruned_through` up to the last one deleted. The
 * window kept is then the last `ms` or the last `changes` changes, whichever
 * holds fewer: the log never outgrows `changes`. Returns the transactions
 * deleted.
 */
export async function pruneChanges(db: Kysely<Database>, retention: Retention): Promise<number> {
  const { rows: [row] } = await sql<{ deleted: number }>`
    WITH newest AS (
      SELECT xid, at, sum(n) OVER (ORDER BY xid DESC) AS newer FROM result_changes
    ), cut AS (
      SELECT max(xid) AS through FROM newest
      WHERE (at < now() - ${retention.ms} * interval '1 millisecond'
          OR newer > ${retention.changes})
        AND xid < pg_snapshot_xmin(pg_current_snapshot())
    ), deleted AS (
      DELETE FROM result_changes WHERE xid <= (SELECT through FROM cut) RETURNING 1
    ), moved AS (
      UPDATE result_changes_window SET pruned_through = c.through
      FROM cut c WHERE c.through IS NOT NULL AND c.through > pruned_through
    )
    SELECT count(*)::int4 AS deleted FROM deleted`.execute(db);
  return row.deleted;
}
