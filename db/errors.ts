import type { ReadErrorCode } from "./read_error.ts";

/**
 * What a failure of the database or of the connection to it means. Every
 * decision about a failed statement (retry the batch, drop a row, give a
 * reserved connection back, answer 503) is made from this, so that they agree.
 *
 * - `data`: Postgres refused the rows themselves.
 * - `permanent`: nothing the statement sends can succeed until someone changes
 *   the database or the configuration.
 * - `timeout`: the statement was canceled (statement_timeout or a cancel request).
 * - `shutdown`: the server shut the connection down (admin or crash shutdown,
 *   not accepting connections yet).
 * - `unavailable`: the server cannot serve now (out of connections or memory,
 *   the database dropped, the session timed out).
 * - `connection`: the connection itself failed or is gone.
 * - `fenced`: the statement came from a leader whose epoch is no longer the
 *   feed's current one (`ingest_fence`, migration 0006): it must stop writing.
 * - `other`: anything else, such as a serialization failure or a deadlock.
 */
export type ErrorMeaning =
  | "fenced"
  | "data"
  | "permanent"
  | "timeout"
  | "shutdown"
  | "unavailable"
  | "connection"
  | "other";

/**
 * The one map from error codes to meaning, first match first: SQLSTATEs (a
 * class is its first two characters), postgres.js's own codes and the
 * system's (ECONNREFUSED, EPIPE...). Errors without a code are matched by
 * `UNCODED_CONNECTION`.
 */
const MEANINGS: readonly (readonly [RegExp, ErrorMeaning])[] = [
  // Raised by ingest_fence (migration 0006); class SF is this service's own.
  [/^SF001$/, "fenced"],
  // 21 cardinality violation, 22 data exception, 23 integrity violation,
  // 54 program limit exceeded: without the offending row the rest can succeed.
  [/^(21|22|23|54)/, "data"],
  // 28 invalid authorization, 3D invalid catalog, 3F invalid schema, 42 syntax
  // error or access rule violation (42501 insufficient privilege), 0A feature
  // not supported, 25006 read-only transaction on a standby.
  [/^(28|3D|3F|42|0A)|^25006$/, "permanent"],
  [/^57014$/, "timeout"],
  [/^57P0[123]$/, "shutdown"],
  // 53 insufficient resources; 57P04 database dropped, 57P05 idle session timeout.
  [/^(53|57P0)/, "unavailable"],
  // 08 connection exception; postgres.js's CONNECTION_CLOSED, _ENDED,
  // _DESTROYED and CONNECT_TIMEOUT; the system's ECONNREFUSED, ECONNRESET,
  // ETIMEDOUT, EPIPE and the like.
  [/^(08|CONNECTION_|CONNECT_TIMEOUT$|E[A-Z]+$)/, "connection"],
];

// Kysely ("driver has already been destroyed") and postgres.js, once ended,
// throw errors with no code.
const UNCODED_CONNECTION = /destroyed|closed|ended/i;

/** What `error` means; see `ErrorMeaning`. */
export function errorMeaning(error: unknown): ErrorMeaning {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") {
    return UNCODED_CONNECTION.test(String((error as Error | null)?.message))
      ? "connection"
      : "other";
  }
  for (const [pattern, meaning] of MEANINGS) if (pattern.test(code)) return meaning;
  return "other";
}

/**
 * What a failed statement means for the caller:
 *
 * - `data`: Postgres refused the rows themselves. Retrying the same rows
 *   cannot succeed; without the offending row the rest can.
 * - `permanent`: retrying is only waiting, until someone changes the database
 *   or the configuration.
 * - `fenced`: this instance no longer leads the feed; retrying can never
 *   succeed, and nothing it holds may be written any more.
 * - `transient`: everything else (connection lost, server shutting down,
 *   timeouts, serialization failures, deadlocks), which a retry can fix.
 */
export function classifyError(error: unknown): "data" | "permanent" | "fenced" | "transient" {
  const meaning = errorMeaning(error);
  if (meaning === "data" || meaning === "permanent" || meaning === "fenced") return meaning;
  return "transient";
}

/** What a failed read means for a reader: see `ReadErrorCode`. */
export function readErrorCode(error: unknown): Exclude<ReadErrorCode, "busy"> {
  const meaning = errorMeaning(error);
  if (meaning === "timeout") return "timeout";
  if (meaning === "shutdown" || meaning === "unavailable" || meaning === "connection") {
    return "unavailable";
  }
  return "failed";
}

/** Whether the connection that ran the statement is gone and must not be used again. */
export function connectionLost(error: unknown): boolean {
  const { severity } = (error ?? {}) as { severity?: unknown };
  // FATAL and PANIC end the session, whatever their code.
  return severity === "FATAL" || severity === "PANIC" || errorMeaning(error) === "connection";
}

/**
 * Whether the server shut the connection down before the statement ran: a
 * FATAL shutdown is kept by postgres.js and given to the first statement on
 * the reconnected connection, which was never sent.
 */
export function shutDown(error: unknown): boolean {
  const { severity } = (error ?? {}) as { severity?: unknown };
  return severity === "FATAL" && errorMeaning(error) === "shutdown";
}

/** A short description of a database error for logs and quarantine, never for HTTP bodies. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
