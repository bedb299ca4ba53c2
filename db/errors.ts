/**
 * What a failed statement means for the caller:
 *
 * - `data`: Postgres refused the rows themselves (SQLSTATE classes 21 cardinality
 *   violation, 22 data exception, 23 integrity violation, 54 program limit
 *   exceeded). Retrying the same rows cannot succeed; without the offending row
 *   the rest can.
 * - `permanent`: nothing the statement sends can succeed until someone changes
 *   the database or the configuration (classes 28 invalid authorization, 3D
 *   invalid catalog, 3F invalid schema, 42 syntax error or access rule
 *   violation such as 42501 insufficient privilege, 0A feature not supported,
 *   and 25006 read-only transaction on a standby). Retrying is only waiting.
 * - `transient`: everything else (connection lost, server shutting down,
 *   timeouts, serialization failures, deadlocks), which a retry can fix.
 */
export function classifyError(error: unknown): "data" | "permanent" | "transient" {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || code.length !== 5) return "transient";
  if (/^(21|22|23|54)/.test(code)) return "data";
  if (/^(28|3D|3F|42|0A)/.test(code) || code === "25006") return "permanent";
  return "transient";
}

/** A short description of a database error for logs and quarantine, never for HTTP bodies. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
