/**
 * What a failed statement means for the caller: `data` when Postgres rejected
 * the rows themselves (SQLSTATE classes 21 cardinality violation, 22 data exception, 23 integrity
 * violation, 54 program limit exceeded), so retrying the same rows cannot
 * succeed; `transient` for everything else (connection lost, server shutting
 * down, timeouts, serialization failures), which is worth retrying.
 */
export function classifyError(error: unknown): "data" | "transient" {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^(21|22|23|54)[0-9A-Z]{3}$/.test(code)) return "data";
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
