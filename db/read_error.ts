/**
 * Why a read failed, as a stable code: `busy` when it was refused without
 * asking the database, because too many reads ran and waited already.
 */
export type ReadErrorCode = "busy" | "timeout" | "unavailable" | "failed";

/** A read that failed; `code` says whether waiting and retrying can help. */
export class ReadError extends Error {
  override name = "ReadError";
  constructor(readonly code: ReadErrorCode, options?: ErrorOptions) {
    super(`Cannot read from the database: ${code}`, options);
  }
}
