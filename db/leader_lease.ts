import postgres from "postgres";
import type { PoolMode } from "./connect.ts";
import type { Fence } from "./fence.ts";

/** The options of {@linkcode createLeaderLease}. */
export interface LeaderLeaseOptions {
  url: string;
  /** The feed key, as the checkpoint's. */
  feed: string;
  /** This instance's id, stored as the holder. */
  instance: string;
  /** How long a lease lasts without renewal. */
  leaseMs: number;
  /**
   * `transaction`: behind a transaction-mode pooler, which cannot keep a
   * session advisory lock: leases only, so a dead leader is replaced once
   * its lease expires, not at once.
   */
  poolMode?: PoolMode;
}

/** Who leads a feed, as its row says. */
export interface Leader {
  instance: string;
  epoch: number;
  since: Date;
}

/** A term of leadership: its epoch and a signal that aborts when the lock is lost. */
export interface Term extends Fence {
  lost: AbortSignal;
}

/** What `tryAcquire` found: a term when this instance now leads, and the leader either way. */
export interface Acquired {
  term?: Term;
  leader?: Leader;
}

/** Leadership of one feed, kept in the `ingest_leader` row and a session advisory lock. */
export interface LeaderLease {
  /**
   * Takes the lead when the lease expired, or when the holder held the lock
   * and this instance now got it (the holder's session is gone).
   */
  tryAcquire(): Promise<Acquired>;
  /** Extends the lease of `term`; false when it is no longer this instance's. */
  renew(term: Fence): Promise<boolean>;
  /** Ends `term` now (the lease expires, the lock is freed): a handover. */
  release(term: Fence): Promise<void>;
  current(): Promise<Leader | undefined>;
  close(): Promise<void>;
}

/**
 * A session advisory lock cannot be held through a transaction-mode pooler:
 * each statement may run on another server session.
 */
export class TransactionPoolerError extends Error {
  override name = "TransactionPoolerError";
  constructor(symptom: string) {
    super(
      `Cannot hold the leadership lock: ${symptom}, as behind a transaction-mode pooler ` +
        "(pgbouncer pool_mode = transaction); set DATABASE_POOL_MODE=transaction",
    );
  }
}

/**
 * Throws a `TransactionPoolerError` when `url` leads through a transaction-mode
 * pooler. Directly or through a session pooler, a connection keeps one server
 * session (one backend pid) and no other connection shares it; behind a
 * transaction pooler, a statement sent while another client holds a
 * transaction open runs in another session, or that client got this one's.
 * A few rounds, since which session a pooler hands out is up to it.
 */
export async function checkSessionPooling(url: string, rounds = 5): Promise<void> {
  const options = {
    max: 1,
    prepare: false,
    fetch_types: false,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: "scorestream-pooling-check" },
  };
  const sql = postgres(url, options);
  const other = postgres(url, options);
  const pid = async (client: postgres.Sql | postgres.TransactionSql) =>
    (await client<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`)[0].pid;
  try {
    const own = await pid(sql);
    for (let round = 0; round < rounds; round++) {
      if (await pid(sql) !== own) {
        throw new TransactionPoolerError("consecutive statements ran in different sessions");
      }
      await other.begin(async (tx) => {
        if (await pid(tx) === own) {
          throw new TransactionPoolerError("two connections shared one session");
        }
        // With a single server session, the statement waits for this transaction.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const next = await Promise.race([
          pid(sql),
          new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 2_000)),
        ]).finally(() => clearTimeout(timer));
        if (next !== own) {
          throw new TransactionPoolerError("consecutive statements ran in different sessions");
        }
      });
    }
  } finally {
    await Promise.all([sql.end({ timeout: 1 }), other.end({ timeout: 1 })]);
  }
}

/**
 * Leadership in Postgres on one dedicated connection that is never recycled:
 * a lease row with an epoch that only grows (the fence: see `ingest_fence`)
 * and, unless `poolMode` is `transaction`, a session advisory lock on the
 * feed. The lock alone is not enough (a dropped connection loses it silently
 * while the old holder may still write), the lease alone makes every takeover
 * wait for expiry: the lock makes the death of a holder's session visible at
 * once, the epoch makes takeover safe whatever the old holder still does.
 */
export function createLeaderLease(
  { url, feed, instance, leaseMs, poolMode = "session" }: LeaderLeaseOptions,
): LeaderLease {
  const withLock = poolMode === "session";
  let closes = 0;
  // The session that holds the advisory lock, and the closes counted then.
  let lock: { pid: number; closes: number } | undefined;
  // Aborts the term when a lock held during it is lost: someone may take over at once.
  let termLost: AbortController | undefined;
  const options = {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    prepare: false,
    fetch_types: false,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: "scorestream-leader" },
    onclose: () => {
      closes++;
      if (lock) termLost?.abort(new Error("the leadership lock's connection closed"));
      lock = undefined;
    },
  };
  const sql = postgres(url, options);
  const key = sql`hashtextextended(${`scorestream-leader:${feed}`}, 0)`;
  let probed = !withLock;

  /** Takes the lock unless held; whether it is held afterwards. */
  async function takeLock(): Promise<boolean> {
    if (!withLock) return false;
    const [{ pid, got }] = await sql<{ pid: number; got: boolean | null }[]>`
      SELECT pg_backend_pid() AS pid,
        CASE WHEN ${lock === undefined} THEN pg_try_advisory_lock(${key}) END AS got`;
    if (lock && lock.pid !== pid) {
      if (lock.closes === closes) throw new TransactionPoolerError("the session changed");
      lock = undefined;
      return await takeLock();
    }
    if (got) lock = { pid, closes };
    return lock !== undefined;
  }

  async function unlock() {
    if (!lock) return;
    lock = undefined;
    await sql`SELECT pg_advisory_unlock(${key})`;
  }

  return {
    async tryAcquire() {
      if (!probed) {
        await checkSessionPooling(url);
        probed = true;
      }
      const locked = await takeLock();
      // A live lease is read without a lock: FOR UPDATE would wait for every
      // transaction of the leader's writers that passed the fence.
      const [seen] = await sql<(Leader & { expired: boolean; locked: boolean })[]>`
        SELECT holder AS instance, epoch, since, expires_at <= now() AS expired, locked
        FROM ingest_leader WHERE feed = ${feed}`;
      if (seen && !seen.expired && !(seen.locked && locked)) {
        await unlock();
        return { leader: { instance: seen.instance, epoch: seen.epoch, since: seen.since } };
      }
      const acquired = await sql.begin(async (tx) => {
        const [row] = await tx<(Leader & { expired: boolean; locked: boolean })[]>`
          SELECT holder AS instance, epoch, since, expires_at <= now() AS expired, locked
          FROM ingest_leader WHERE feed = ${feed} FOR UPDATE`;
        const expires = tx`now() + ${leaseMs} * interval '1 millisecond'`;
        if (!row) {
          const [leader] = await tx<Leader[]>`
            INSERT INTO ingest_leader (feed, epoch, holder, since, expires_at, locked)
            VALUES (${feed}, 1, ${instance}, now(), ${expires}, ${locked})
            RETURNING holder AS instance, epoch, since`;
          return { leader, ours: true };
        }
        if (!row.expired && !(row.locked && locked)) {
          return { leader: { instance: row.instance, epoch: row.epoch, since: row.since } };
        }
        // The epoch bump waits for every transaction that passed the old epoch's fence.
        const [leader] = await tx<Leader[]>`
          UPDATE ingest_leader SET epoch = epoch + 1, holder = ${instance}, since = now(),
            expires_at = ${expires}, locked = ${locked}
          WHERE feed = ${feed}
          RETURNING holder AS instance, epoch, since`;
        return { leader, ours: true };
      });
      if (!acquired.ours) {
        // A free lock while someone else holds the lease: theirs to take at renewal.
        await unlock();
        return { leader: acquired.leader };
      }
      termLost = new AbortController();
      const { epoch } = acquired.leader;
      return { leader: acquired.leader, term: { feed, epoch, lost: termLost.signal } };
    },
    async renew({ epoch }) {
      const locked = await takeLock();
      const rows = await sql`
        UPDATE ingest_leader
        SET expires_at = now() + ${leaseMs} * interval '1 millisecond', locked = ${locked}
        WHERE feed = ${feed} AND epoch = ${epoch} AND holder = ${instance}
        RETURNING epoch`;
      return rows.length === 1;
    },
    async release({ epoch }) {
      await sql`
        UPDATE ingest_leader SET expires_at = now(), locked = false
        WHERE feed = ${feed} AND epoch = ${epoch} AND holder = ${instance}`;
      termLost = undefined;
      await unlock();
    },
    async current() {
      const [row] = await sql<Leader[]>`
        SELECT holder AS instance, epoch, since FROM ingest_leader WHERE feed = ${feed}`;
      return row;
    },
    async close() {
      await sql.end({ timeout: 1 });
    },
  };
}
