import { createHistogram, observe } from "../histogram.ts";

const LAG_WINDOW_MS = 60_000;
// The lags of at most this many recent batches are kept: one per batch for a
// minute grew with the feed's chunk rate (a feed of tiny chunks made it hundreds
// of MiB, and every snapshot sorted all of it).
const LAG_SAMPLES = 16_384;
/** Events pending without a commit for this long mean ingest is stuck (see `stuck`). */
export const STALL_MS = 30_000;

/** Why ingest makes no progress, and since when (an ISO 8601 time). */
export interface Stuck {
  reason: string;
  since: string;
}

const wallClock = (at: number) => new Date(performance.timeOrigin + at).toISOString();

/**
 * Counters and distributions of the ingest pipeline. `snapshot()` has the
 * shape of the API's `IngestSnapshot` (api/ingest_stats.ts documents each
 * field); main.ts hands this object to the API, which type-checks the match.
 */
export class IngestStats {
  /**
   * `leader` reads the feed; a `standby` only serves, ready to take over;
   * `api` (ROLE=api) is never a candidate.
   */
  role: "leader" | "standby" | "api" = "leader";
  /** The feed's leadership epoch as last seen; null without leadership (one instance). */
  epoch: number | null = null;
  /** Who leads the feed and since when (ISO 8601), as last seen. */
  leader: { instance: string; since: string } | null = null;
  /** Terms of leadership this instance began. */
  takeovers = 0;
  /** Statements of this instance Postgres refused as fenced (an old epoch's). */
  fenced = 0;
  state = "starting";
  received = 0;
  applied = 0;
  ignored = 0;
  reconnects = 0;
  oversized = 0;
  writerRestarts = 0;
  writerRetries = 0;
  lastEventId: string | null = null;
  checkpointSavedAt: number | null = null;
  readonly rejectedByReason: Record<string, number> = {};
  readonly batchSize = createHistogram([10, 100, 1_000, 5_000, 10_000, 20_000, 50_000]);
  readonly commitLatencyMs = createHistogram([1, 5, 10, 25, 50, 100, 250, 1_000, 5_000]);
  readonly #lagAt = new Float64Array(LAG_SAMPLES);
  readonly #lagMs = new Float64Array(LAG_SAMPLES);
  #lags = 0;

  /** Events pending per writer; set once the writers run. */
  queueDepth: () => number[] = () => [];
  /** When a commit last came, or events became pending with none before. */
  progressAt = performance.now();
  /**
   * Each writer whose attempts fail in a way retrying cannot fix: the latest
   * error, and since when (performance.now()) they have failed so.
   */
  readonly #permanentErrors = new Map<number, { error: string; since: number }>();

  /** A writer's attempt failed with `error`; `permanent` if retrying cannot fix it. */
  writerFailed(writer: number, error: string, permanent: boolean, now = performance.now()): void {
    if (!permanent) return;
    this.#permanentErrors.set(writer, {
      error,
      since: this.#permanentErrors.get(writer)?.since ?? now,
    });
  }

  /** Why this instance cannot even compete for the feed, if retrying cannot fix it. */
  #leadershipError: { error: string; since: number } | undefined;

  /** A try to take the lead failed with `error` (`permanent`: retrying cannot fix it), or went through. */
  leadershipAttempted(error?: string, permanent = false, now = performance.now()): void {
    this.#leadershipError = error !== undefined && permanent
      ? { error, since: this.#leadershipError?.since ?? now }
      : undefined;
  }

  /** A writer committed: whatever it failed with before is over. */
  writerCommitted(writer: number): void {
    this.#permanentErrors.delete(writer);
  }

  /**
   * Why ingest makes no progress though events wait, and since when, or null
   * while it does: a writer fails with an error that retrying cannot fix (a role
   * without write rights), or events have been pending for `STALL_MS` without a
   * commit.
   */
  stuck(now = performance.now()): Stuck | null {
    if (this.#leadershipError) {
      const { error, since } = this.#leadershipError;
      return { reason: `cannot compete for the feed: ${error}`, since: wallClock(since) };
    }
    for (const [writer, { error, since }] of this.#permanentErrors) {
      return { reason: `writer ${writer} cannot commit: ${error}`, since: wallClock(since) };
    }
    if (now - this.progressAt < STALL_MS) return null;
    const pending = this.queueDepth().reduce((a, b) => a + b, 0);
    if (pending === 0) return null;
    return {
      reason: `${pending} events pending and nothing committed for ${
        Math.round(now - this.progressAt)
      } ms`,
      since: wallClock(this.progressAt),
    };
  }

  reject(reason: string, count = 1): void {
    this.rejectedByReason[reason] = (this.rejectedByReason[reason] ?? 0) + count;
  }

  committed(events: number, commitMs: number, now = performance.now()): void {
    this.progressAt = now;
    this.applied += events;
    observe(this.batchSize, events);
    observe(this.commitLatencyMs, commitMs);
  }

  lag(ms: number, now = performance.now()): void {
    const i = this.#lags++ % LAG_SAMPLES;
    this.#lagAt[i] = now;
    this.#lagMs[i] = ms;
  }

  snapshot(now = performance.now()) {
    const recent: number[] = [];
    for (let i = 0; i < Math.min(this.#lags, LAG_SAMPLES); i++) {
      if (this.#lagAt[i] >= now - LAG_WINDOW_MS) recent.push(this.#lagMs[i]);
    }
    recent.sort((a, b) => a - b);
    return {
      role: this.role,
      epoch: this.epoch,
      leader: this.leader && { ...this.leader },
      takeovers: this.takeovers,
      fenced: this.fenced,
      state: this.state,
      received: this.received,
      applied: this.applied,
      rejected: Object.values(this.rejectedByReason).reduce((a, b) => a + b, 0),
      ignored: this.ignored,
      rejectedByReason: { ...this.rejectedByReason },
      reconnects: this.reconnects,
      oversized: this.oversized,
      writerRestarts: this.writerRestarts,
      writerRetries: this.writerRetries,
      lastEventId: this.lastEventId,
      lagMs: recent.length
        ? recent[Math.min(recent.length - 1, Math.floor(recent.length * 0.99))]
        : null,
      checkpointAgeMs: this.checkpointSavedAt === null ? null : now - this.checkpointSavedAt,
      queueDepth: this.queueDepth(),
      stuck: this.stuck(now),
      batchSize: structuredClone(this.batchSize),
      commitLatencyMs: structuredClone(this.commitLatencyMs),
    };
  }
}
