import { createRoute, z } from "@hono/zod-openapi";
import { type Queries, ReadError, type Totals } from "../db/mod.ts";
import { createRouter, ok, problemResponse } from "./_router.ts";
import { problem } from "./problem.ts";
import { noQuery, Stats, Status } from "./_schemas.ts";
import type { IngestStatsSource } from "./ingest_stats.ts";
import {
  type HttpMetrics,
  renderAnswerMetrics,
  renderEventMetrics,
  renderIngestMetrics,
  renderProcessMetrics,
} from "./metrics.ts";
import type { EventHubStats } from "./event_hub.ts";
import type { AnswerSource } from "./read_cache/mod.ts";

const NO_STORE = { "Cache-Control": "no-store" };
const RETRY = { "Retry-After": "1" };

/** The last failure of something the service depends on; `error` holds no secret. */
export interface LastError {
  error: string;
  /** When it happened, ISO 8601. */
  at: string;
}

/** The last failure of the feed and of the database, each null until one happens. */
export interface LastErrors {
  feed: LastError | null;
  database: LastError | null;
}

/** The longest /stats waits for fresh counts. */
const STATS_WAIT_MS = 250;

/** What the operational routes read. */
export interface OperationsOptions {
  queries: Queries;
  stats?: IngestStatsSource;
  ready: () => Promise<boolean>;
  /** False until the database is migrated: then /stats reads no counts. */
  migrated: () => boolean;
  lastErrors: () => LastErrors;
  readyTimeoutMs: number;
  statsCacheMs: number;
  httpMetrics: HttpMetrics;
  /** Student and exam pages by what answering them took. */
  answered: Record<AnswerSource, number>;
  /** The change stream's counters, when it is served. */
  events?: () => EventHubStats;
}

/** `/stats`, `/healthz`, `/readyz` and `/metrics`. */
export function operationRoutes(
  {
    queries,
    stats,
    ready,
    migrated,
    lastErrors,
    readyTimeoutMs,
    statsCacheMs,
    httpMetrics,
    answered,
    events,
  }: OperationsOptions,
) {
  const totals = cached(() => queries.totals(), statsCacheMs);
  let lastCounts: Totals | null = null;
  // A slow or refused count is answered with the last one, so that /stats
  // never waits long behind an overloaded database; a failed one with null.
  const counts = () =>
    withTimeout(
      totals().then(
        (read) => lastCounts = read,
        (error) => error instanceof ReadError && error.code === "busy" ? lastCounts : null,
      ),
      STATS_WAIT_MS,
      () => lastCounts,
    );
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/stats",
        tags: ["operations"],
        request: { query: noQuery },
        summary: "What is stored and how ingest is doing",
        description: "Counts come from the aggregates, refreshed at most every " +
          `${statsCacheMs} ms; when they take over ${STATS_WAIT_MS} ms the last ones are ` +
          "sent; they are null while the database does not answer.",
        responses: { 200: ok(Stats, "Counts and ingest statistics.") },
      }),
      async (c) => {
        const stored = migrated() ? await counts() : null;
        const ingest = stats?.snapshot() ?? null;
        return c.json(
          {
            students: stored?.students ?? null,
            exams: stored?.exams ?? null,
            results: stored?.results ?? null,
            quarantined: stored?.quarantined ?? null,
            ingest: ingest && {
              role: ingest.role,
              epoch: ingest.epoch,
              leader: ingest.leader,
              takeovers: ingest.takeovers,
              fenced: ingest.fenced,
              state: ingest.state,
              received: ingest.received,
              applied: ingest.applied,
              rejected: ingest.rejected,
              rejectedByReason: ingest.rejectedByReason,
              ignored: ingest.ignored,
              reconnects: ingest.reconnects,
              lastEventId: ingest.lastEventId,
              lagMs: ingest.lagMs,
              checkpointAgeMs: ingest.checkpointAgeMs,
              queueDepth: ingest.queueDepth,
              stuck: ingest.stuck,
            },
            events: events?.() ?? null,
            lastErrors: lastErrors(),
          },
          200,
          NO_STORE,
        );
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/healthz",
        tags: ["operations"],
        request: { query: noQuery },
        summary: "Liveness",
        responses: { 200: ok(Status, "The process runs.") },
      }),
      (c) => c.json({ status: "ok" }, 200, NO_STORE),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/readyz",
        tags: ["operations"],
        request: { query: noQuery },
        summary: "Readiness",
        description: `200 when the database answers within ${readyTimeoutMs} ms and ` +
          "its migrations are applied.",
        responses: {
          200: ok(Status, "Ready to serve."),
          503: problemResponse(
            "The database does not answer or is not migrated, or ingest is stuck " +
              "(`detail` and `stuck` say why, as /stats's `ingest.stuck`).",
          ),
        },
      }),
      async (c) => {
        if (!migrated()) {
          return problem(c, 503, "The database is not migrated yet", RETRY, {
            lastErrors: lastErrors(),
          }) as never;
        }
        const stuck = stats?.snapshot().stuck;
        if (stuck) {
          return problem(c, 503, `Ingest is stuck: ${stuck.reason}`, RETRY, {
            stuck,
            lastErrors: lastErrors(),
          }) as never;
        }
        if (!await withTimeout(ready().catch(() => false), readyTimeoutMs, () => false)) {
          return problem(
            c,
            503,
            "The database does not answer or its migrations are not applied",
            RETRY,
            { lastErrors: lastErrors() },
          ) as never;
        }
        return c.json({ status: "ready" }, 200, NO_STORE);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/metrics",
        tags: ["operations"],
        request: { query: noQuery },
        summary: "Prometheus metrics",
        responses: {
          200: {
            description: "Prometheus text exposition format 0.0.4.",
            content: { "text/plain": { schema: z.string() } },
          },
        },
      }),
      (c) => {
        const snapshot = stats?.snapshot();
        const text = httpMetrics.render() + renderAnswerMetrics(answered) +
          (snapshot ? renderIngestMetrics(snapshot) : "") +
          (events ? renderEventMetrics(events()) : "") + renderProcessMetrics();
        return c.text(text, 200, {
          ...NO_STORE,
          "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        });
      },
    );
}

/** `read` at most once per `ms`, sharing one read among concurrent callers. */
function cached<T>(read: () => Promise<T>, ms: number): () => Promise<T> {
  let value: Promise<T> | undefined;
  let at = 0;
  return () => {
    if (!value || performance.now() - at >= ms) {
      at = performance.now();
      const current = read();
      value = current;
      // A failure is not kept: the next call tries again.
      current.catch(() => {
        if (value === current) value = undefined;
      });
    }
    return value;
  };
}

/** What `pending` resolves to, or `late()` when it takes longer than `ms`. */
async function withTimeout<T>(pending: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<T>((resolve) => timer = setTimeout(() => resolve(late()), ms));
  try {
    return await Promise.race([pending, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
