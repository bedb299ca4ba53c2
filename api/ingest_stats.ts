import type { Histogram } from "../histogram.ts";

/** The ingest side's counters at one moment; every count is since start-up. */
export interface IngestSnapshot {
  /** "leader": reads the feed; "standby": serves and stands by; "api": ROLE=api. */
  role: "leader" | "standby" | "api";
  /** The feed's leadership epoch as last seen; null when one instance runs alone. */
  epoch: number | null;
  /** Who leads the feed, and since when (ISO 8601). */
  leader: { instance: string; since: string } | null;
  /** Terms of leadership this instance began. */
  takeovers: number;
  /** Statements of this instance that Postgres refused as fenced. */
  fenced: number;
  /** What the feed connection is doing: "starting", "connecting", "open", "backoff", "stopped". */
  state: string;
  /** Events read from the feed, of every type. */
  received: number;
  /** Score events committed to the database. */
  applied: number;
  /** Events that failed validation and went to quarantine. */
  rejected: number;
  rejectedByReason: Record<string, number>;
  /** Events of other types than `score`. */
  ignored: number;
  reconnects: number;
  /** The checkpoint: the last SSE id whose events, and all before, are committed. Opaque. */
  lastEventId: string | null;
  /** p99 over the last minute of the time from receiving an event to its commit. */
  lagMs: number | null;
  /** Time since the checkpoint last moved. */
  checkpointAgeMs: number | null;
  /** Events sent to each writer and not yet committed, by writer index. */
  queueDepth: number[];
  /** Why ingest makes no progress though events wait, and since when; null while it does. */
  stuck: { reason: string; since: string } | null;
  /** Events per committed batch. */
  batchSize: Histogram;
  /** Time from sending a batch to a writer to its commit. */
  commitLatencyMs: Histogram;
}

/**
 * What each quantity of `IngestSnapshot` means, in words free of units: the
 * one text that /stats's OpenAPI schema and the HELP of its /metrics series
 * both show.
 */
export const INGEST_DESCRIPTIONS = {
  role: "This instance's part: leader (reads the feed), standby (serves and stands by to " +
    "take over), or api (ROLE=api: never a candidate).",
  epoch: "The feed's leadership epoch as last seen; it grows with every new leader.",
  leader: "The instance that leads the feed, and since when.",
  takeovers: "Terms of leadership this instance began.",
  fenced: "Statements of this instance that Postgres refused because their leadership " +
    "epoch was no longer current.",
  state: "The feed connection's current state: starting, connecting, open, backoff or stopped.",
  received: "Events read from the feed, of every type.",
  applied: "Score events committed to the database.",
  rejected: "Events that failed validation and went to quarantine.",
  rejectedByReason: "Events quarantined, by reason.",
  ignored: "Events of other types than score.",
  reconnects: "Reconnections to the feed.",
  lagMs: "p99 over the last minute of the time from receiving an event to its commit.",
  checkpointAgeMs: "Time since the checkpoint last moved.",
  queueDepth: "Events sent to each writer and not yet committed, by writer.",
  stuck: "Why ingest makes no progress though events wait (a writer fails with an error " +
    "that retrying cannot fix, or events have been pending 30 s without a commit), and " +
    "since when; null while it makes progress. /readyz answers 503 meanwhile.",
} satisfies Partial<Record<keyof IngestSnapshot, string>>;

/** Where the API reads ingest statistics from; the API never imports ingest/. */
export interface IngestStatsSource {
  snapshot(): IngestSnapshot;
}
