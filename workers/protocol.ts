import type { Fence, PoolMode, QuarantineRow } from "../db/mod.ts";

/**
 * One routed slice of the feed for one writer: the valid events in stream
 * order as columns, and the rejected events to quarantine.
 */
export interface Batch {
  id: number;
  names: string[];
  /** UTF-16 code units of its studentIds and quarantine entries: what bounds memory. */
  chars: number;
  exams: Int32Array;
  scores: Float64Array;
  quarantine: QuarantineRow[];
}

/** What the main thread tells a writer worker. */
export type ToWriter =
  | {
    type: "start";
    writer: number;
    databaseUrl: string;
    poolMode: PoolMode;
    maxBatchEvents: number;
    /** Every commit carries it: Postgres refuses it once the epoch is stale. */
    fence?: Fence;
    /** The instance, named in each commit's notification. */
    origin: string;
  }
  | { type: "batch"; batch: Batch }
  | { type: "close" };

/** What a writer worker tells the main thread. */
export type FromWriter =
  /** Loaded, and its connection opened (or tried for a while): batches go straight in. */
  | { type: "ready" }
  | { type: "acked"; ack: Ack }
  | { type: "retrying"; retry: Retry }
  | { type: "skipped"; skipped: Skipped }
  /** Postgres refused a commit as fenced: the writer commits nothing more. */
  | { type: "fenced"; error: string }
  | { type: "closed" };

/** A quarantine entry Postgres refused even as an escaped excerpt: not stored. */
export interface Skipped {
  error: string;
  raw: string;
}

/** Batches committed together, in the order they were sent. */
export interface Ack {
  ids: number[];
  /** Valid events committed, counted before coalescing. */
  applied: number;
  commitMs: number;
  /** Events Postgres refused; they were quarantined instead. */
  refused: number;
}

/** A failed attempt that will be retried after `delayMs`. */
export interface Retry {
  attempt: number;
  error: string;
  delayMs: number;
  /** Retrying cannot fix it until someone changes the database or the configuration. */
  permanent: boolean;
}
