import { type RawBuilder, sql } from "kysely";

/** A leader's claim on a feed: statements carrying it commit only in that epoch. */
export interface Fence {
  feed: string;
  epoch: number;
}

/**
 * The FROM clause that fences a one-statement transaction: `ingest_fence`
 * (migration 0006) runs before the select list and raises SQLSTATE SF001 when
 * the epoch is stale; without a fence, nothing.
 */
export function fenced(fence: Fence | undefined): RawBuilder<unknown> {
  return fence ? sql`FROM ingest_fence(${fence.feed}, ${fence.epoch}::int4)` : sql``;
}
