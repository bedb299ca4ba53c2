import type { Context } from "hono";
import { accepts } from "hono/accepts";
import { HTTPException } from "hono/http-exception";
import { ReadError, type Result } from "../db/mod.ts";

/** The representations of a list of results besides JSON. */
const EXPORT_TYPES = {
  csv: "text/csv; charset=utf-8; header=present",
  ndjson: "application/x-ndjson",
} as const;

export type ExportFormat = keyof typeof EXPORT_TYPES;

/** Which representation the request's Accept asks for; undefined for JSON. */
export function exportFormat(c: Context): ExportFormat | undefined {
  const type = accepts(c, {
    header: "Accept",
    supports: ["application/json", "text/csv", "application/x-ndjson"],
    default: "application/json",
  });
  return type === "text/csv" ? "csv" : type === "application/x-ndjson" ? "ndjson" : undefined;
}

/** Results read per statement while exporting. */
const BATCH = 5_000;
/** How long a batch after the first waits for a place at the read gate, in tries of 100 ms. */
const BUSY_TRIES = 50;

/**
 * Streams results as CSV (`studentId,exam,score`, RFC 4180) or NDJSON, read in
 * keyset batches as the client takes them: memory holds one batch, and no
 * database connection is held between batches, however slowly the client
 * reads. The first batch is read before answering, so that a busy or absent
 * database, or an unknown student or exam (`missing`), gets its status code.
 * Results committed during the export may or may not be in it; none is sent
 * twice.
 */
export async function exportResults(
  c: Context,
  format: ExportFormat,
  { read, limit: pageLimit, missing }: {
    /** The next results after `last` (undefined: from the start), at most `n`. */
    read: (last: Result | undefined, n: number) => Promise<Result[]>;
    /** The validated `limit`: at most this many results, when the request gives it. */
    limit: number;
    /** Asked when there are no results at all: the detail of a 404, or undefined. */
    missing?: () => Promise<string | undefined>;
  },
): Promise<Response> {
  // The page's default limit is no limit of an export.
  const limit = c.req.query("limit") === undefined ? Infinity : pageLimit;
  const size = () => Math.min(BATCH, limit - sent);
  let sent = 0;
  let requested = size();
  let pending: Result[] | undefined = await read(undefined, requested);
  if (pending.length === 0 && missing) {
    const detail = await missing();
    if (detail) throw new HTTPException(404, { message: detail });
  }
  let last: Result | undefined;
  const line = format === "csv" ? csvLine : ndjsonLine;
  const body = new ReadableStream<string>({
    start(controller) {
      if (format === "csv") controller.enqueue("studentId,exam,score\r\n");
    },
    async pull(controller) {
      if (!pending) {
        requested = size();
        pending = await readPatiently(() => read(last, requested));
      }
      const batch = pending;
      pending = undefined;
      if (batch.length) controller.enqueue(batch.map(line).join(""));
      sent += batch.length;
      last = batch.at(-1);
      if (batch.length < requested || sent >= limit) controller.close();
    },
  }, { highWaterMark: 0 });
  return c.body(body.pipeThrough(new TextEncoderStream()), 200, {
    "Content-Type": EXPORT_TYPES[format],
    "Cache-Control": "no-store",
  });
}

/** A batch in the middle of a stream waits out a busy gate rather than cut the stream. */
async function readPatiently(read: () => Promise<Result[]>): Promise<Result[]> {
  for (let tries = 1;; tries++) {
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof ReadError && error.code === "busy") || tries >= BUSY_TRIES) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const csvLine = ({ studentId, exam, score }: Result) =>
  `${csvField(studentId)},${exam},${score}\r\n`;

const ndjsonLine = (result: Result) =>
  `{"studentId":${
    JSON.stringify(result.studentId)
  },"exam":${result.exam},"score":${result.score}}\n`;

// A studentId holds no control characters, so CR and LF cannot be in one.
const csvField = (text: string) => /[",]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
