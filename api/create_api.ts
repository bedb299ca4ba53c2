import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { compress } from "hono/compress";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { routePath } from "hono/route";
import { timeout } from "hono/timeout";
import { type Queries, ReadError, type ReadErrorCode } from "../db/mod.ts";
import { type ApiEnv, createRouter } from "./_router.ts";
import { dashboardRoutes } from "./dashboard.ts";
import type { EventHub } from "./event_hub.ts";
import { eventRoutes } from "./events.ts";
import { docsRoutes } from "./docs.ts";
import { examRoutes } from "./exams.ts";
import type { IngestStatsSource } from "./ingest_stats.ts";
import { createHttpMetrics } from "./metrics.ts";
import { type LastErrors, operationRoutes } from "./operations.ts";
import { problem } from "./problem.ts";
import { quarantineRoutes } from "./quarantine.ts";
import { type AnsweredRequest, createReadCache, type ReadCache } from "./read_cache/mod.ts";
import { resultRoutes } from "./results.ts";
import { studentRoutes } from "./students.ts";

/** One structured log line; the caller decides where it goes. */
export type LogEntry = Record<string, unknown> & { level: "info" | "warn" | "error"; msg: string };

/** What the API needs; everything but `queries` and `ready` has a default. */
export interface ApiOptions {
  /** The read side, built on the API's own small pool with a statement timeout. */
  queries: Queries;
  /** Whether the database answers and is migrated; /readyz bounds it with a timeout. */
  ready: () => Promise<boolean>;
  /**
   * False until the database is migrated: until then every route that reads
   * it answers 503 with Retry-After, without reaching it. Default: migrated.
   */
  migrated?: () => boolean;
  /** The last failure of the feed and of the database, for /stats and /readyz. */
  lastErrors?: () => LastErrors;
  /** Ingest statistics for /stats and /metrics; absent on an API-only instance. */
  stats?: IngestStatsSource;
  /** Receives one access log entry per request and every server error. */
  log?: (entry: LogEntry) => void;
  /** Origins allowed by CORS, as a list or comma-separated; CORS is off when unset. */
  corsOrigin?: string | string[];
  /** A request still running after this answers 503. */
  requestTimeoutMs?: number;
  /** /readyz answers 503 when `ready()` takes longer than this. */
  readyTimeoutMs?: number;
  /** The longest path and query accepted, in bytes; longer answers 414. */
  maxUrlLength?: number;
  /** How long /stats reuses its counts. */
  statsCacheMs?: number;
  /**
   * The read cache that main.ts puts in front of the app (`inFrontOf`); the
   * student and exam routes keep their pages in it. Default: one of its own,
   * without a change feed.
   */
  readCache?: ReadCache;
  /** The change stream behind `GET /events`; the route is absent without it. */
  events?: EventHub;
}

/**
 * Builds the HTTP API: the routes of DESIGN.md and a few more, OpenAPI at
 * /openapi.json, Swagger UI at /docs, the dashboard at /, and problem+json
 * for every error.
 */
export function createApi({
  queries,
  ready,
  migrated = () => true,
  lastErrors = () => ({ feed: null, database: null }),
  stats,
  log = () => {},
  corsOrigin,
  requestTimeoutMs = 10_000,
  readyTimeoutMs = 2_000,
  maxUrlLength = 4096,
  statsCacheMs = 1_000,
  readCache = createReadCache(),
  events,
}: ApiOptions): OpenAPIHono<ApiEnv> {
  const httpMetrics = createHttpMetrics();
  const app = createRouter();
  const emit = (entry: LogEntry) => {
    try {
      log(entry);
    } catch {
      // A failing logger must not fail the response it describes.
    }
  };

  const recordRequest = (
    { method, route, path, status, requestId, ms }: AnsweredRequest & { method: string },
  ) => {
    httpMetrics.observe({ method, route, status }, ms / 1000);
    emit({
      level: status >= 500 ? "error" : "info",
      msg: "request",
      requestId,
      method,
      route,
      path: path.slice(0, 256),
      status,
      durationMs: Math.round(ms * 1000) / 1000,
    });
  };

  app.use(requestId());
  app.use(async function observe(c, next) {
    const start = performance.now();
    await next();
    recordRequest({
      method: METHODS.has(c.req.method) ? c.req.method : "OTHER",
      route: routeLabel(c),
      path: c.req.path,
      status: c.res.status,
      requestId: c.get("requestId"),
      ms: performance.now() - start,
    });
  });
  const headers = jsonHeaders(corsOrigin ? "cross-origin" : "same-origin");
  app.use(async function setJsonHeaders(c, next) {
    for (const name in headers) c.header(name, headers[name]);
    await next();
  });
  if (corsOrigin) {
    app.use(cors({
      origin: typeof corsOrigin === "string"
        ? corsOrigin.split(",").map((origin) => origin.trim()).filter(Boolean)
        : corsOrigin,
      allowMethods: ["GET", "HEAD", "OPTIONS"],
      exposeHeaders: ["ETag", "X-Request-Id"],
      maxAge: 600,
    }));
  }
  app.use(rejectMalformedUrl(maxUrlLength));
  app.use(timeout(
    requestTimeoutMs,
    () => new HTTPException(503, { message: "The request took too long" }),
  ));
  app.use(compress());
  app.use(async function whileMigrating(c, next) {
    if (!migrated() && !WITHOUT_DATABASE.test(c.req.path)) {
      throw new HTTPException(503, {
        message: "The database is being migrated; try again shortly",
      });
    }
    await next();
  });

  const cache = readCache.pages;
  app.route("/", studentRoutes({ queries, cache }));
  app.route("/", examRoutes({ queries, cache }));
  app.route("/", resultRoutes({ queries }));
  app.route("/", quarantineRoutes({ queries }));
  app.route(
    "/",
    operationRoutes({
      queries,
      stats,
      ready,
      migrated,
      lastErrors,
      readyTimeoutMs,
      statsCacheMs,
      httpMetrics,
      answered: cache.answered,
      events: events && (() => events.stats()),
    }),
  );
  if (events) app.route("/", eventRoutes({ hub: events }));
  app.route("/", docsRoutes({ document: () => app.getOpenAPI31Document(DOCUMENT) }));
  app.route("/", dashboardRoutes());

  // With CORS on, answers depend on the Origin: those stay with the router.
  if (!corsOrigin) readCache.answerAs({ headers, onAnswered: recordRequest });

  app.notFound((c) => {
    // Every route is a GET (and so a HEAD): a path one of them matches is known.
    const [matched] = app.router.match("GET", c.req.path);
    if (matched.some(([[, route]]) => route.method === "GET")) {
      return problem(c, 405, `${c.req.method} is not allowed here; use GET or HEAD`, {
        Allow: "GET, HEAD",
      });
    }
    return problem(c, 404, `No route for ${c.req.method} at this path`);
  });
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return problem(c, error.status, error.message, error.status === 503 ? RETRY : {});
    }
    if (error instanceof ReadError && error.code !== "failed") {
      return problem(c, 503, UNAVAILABLE[error.code], RETRY);
    }
    emit({
      level: "error",
      msg: "request failed",
      requestId: c.get("requestId"),
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      cause: error instanceof Error && error.cause ? String(error.cause) : undefined,
    });
    return problem(c, 500, "The server failed to answer; the request id identifies it in the logs");
  });
  return app;
}

/**
 * The headers that protect JSON: no sniffing it into a script or a page, no
 * framing, no cross-origin embedding; plus the `Vary` that compress() would
 * add. Headers that only protect HTML pages go on /docs alone (api/docs.ts),
 * and HSTS belongs to the proxy that terminates TLS. They are set before the
 * route runs, so that they go into the response as it is built:
 * hono/secure-headers sets them on the finished response, which cost ~12 µs
 * of a ~60 µs request in Deno.serve, and each header costs ~1 µs more.
 */
function jsonHeaders(
  crossOriginResourcePolicy: "same-origin" | "cross-origin",
): Record<string, string> {
  return {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": crossOriginResourcePolicy,
    "Vary": "Accept-Encoding",
  };
}

const RETRY = { "Retry-After": "1" };

// Routes that answer before the database is migrated: they read it only
// through ready() and the counts of /stats, which wait for the migration.
const WITHOUT_DATABASE =
  /^\/(|healthz|readyz|stats|metrics|openapi\.json|docs(\/.*)?|dashboard\/.*)$/;

const UNAVAILABLE: Record<Exclude<ReadErrorCode, "failed">, string> = {
  busy: "Too many requests are reading the database; retry in a second",
  timeout: "The database did not answer in time",
  unavailable: "The database is unavailable",
};

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The route pattern in OpenAPI form (`/exams/{exam}`), never the raw path. */
function routeLabel(c: Context): string {
  const path = routePath(c, -1);
  if (!path || path === "*" || path === "/*") return "unmatched";
  return path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}");
}

/**
 * Refuses, before any routing, URLs longer than `maxLength` and URLs whose
 * percent-encoding is malformed or not UTF-8, which the router would
 * otherwise pass on half-decoded.
 */
function rejectMalformedUrl(maxLength: number): MiddlewareHandler {
  return async function rejectMalformedUrl(c, next) {
    const url = c.req.url;
    const rest = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    if (rest.length > maxLength) {
      throw new HTTPException(414, { message: `The URL is longer than ${maxLength} bytes` });
    }
    if (rest.includes("%")) {
      let wellFormed = !/%(?![0-9A-Fa-f]{2})/.test(rest);
      try {
        if (wellFormed) decodeURIComponent(rest);
      } catch {
        wellFormed = false;
      }
      if (!wellFormed) {
        throw new HTTPException(400, { message: "The URL has malformed percent-encoding" });
      }
    }
    await next();
  };
}

const DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "scorestream API",
    version: "1.0.0",
    description: [
      "Exam scores ingested from a Server-Sent Events feed, queryable by student and by exam.",
      "",
      "**Lists** are ordered and paginated with `limit` and `after`: `after` is the last key " +
      "of the previous page, and every page's `next` is the `after` of the next one, or " +
      "`null` at the end. `count` and `average` always cover all of a student's or an " +
      "exam's results, not just the page. studentIds sort by their UTF-8 bytes.",
      "",
      "**Errors** are `application/problem+json` (RFC 9457): 400 for a malformed " +
      "or unknown parameter, 404 for an unknown student or exam, 405 (with `Allow`) for " +
      "another method than GET or HEAD, 503 (with `Retry-After`) while the database is " +
      "unavailable or too busy. Every response carries an `X-Request-Id`.",
    ].join("\n"),
  },
  tags: [
    { name: "students", description: "A student's results, average and trend." },
    { name: "exams", description: "An exam's results, average and distribution." },
    { name: "live", description: "Committed changes as a stream of Server-Sent Events." },
    { name: "operations", description: "Health, readiness, statistics and metrics." },
    { name: "documentation", description: "This document and its browsable form." },
  ],
};
