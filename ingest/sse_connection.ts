import { setTimeout as delay } from "node:timers/promises";
import { redactUrl } from "./feed_identity.ts";
import { type SseEvent, SseParser } from "./sse_parser.ts";
import { Utf8DecoderStream } from "./utf8_decoder_stream.ts";

/** The events one network chunk completed, and the last event id after them. */
export interface FeedChunk {
  events: SseEvent[];
  /** The last event id after the chunk's complete blocks ("" for none): the resume point. */
  lastEventId: string;
}

/** What the feed connection is doing, for `/stats` and `/readyz`. */
export interface FeedStatus {
  state: "connecting" | "open" | "backoff" | "stopped";
  /** Connections that failed or ended, each followed by a reconnect. */
  reconnects: number;
  /** Why the last connection failed or ended, or null before the first failure. */
  lastError: string | null;
}

/** The options of {@linkcode consumeFeed}. */
export interface ConsumeFeedOptions {
  url: string | URL;
  /** The last event id to resume after, from the stored checkpoint ("" for none). */
  lastEventId?: string;
  /** Aborting stops reading and resolves `consumeFeed` (after an in-flight `onChunk`). */
  signal: AbortSignal;
  /**
   * Called once per decoded network chunk that completed an event or moved the last
   * event id. The socket is not read again until a returned promise settles: that is
   * the backpressure of the whole pipeline. Whatever it throws propagates.
   */
  onChunk(chunk: FeedChunk): void | Promise<void>;
  onStatus?(status: FeedStatus): void;
  fetch?: typeof fetch;
  /**
   * The largest event accepted: its non-comment lines without line terminators,
   * counted in UTF-16 code units (never more than its UTF-8 bytes). Default 1 MiB.
   * A larger one is skipped as it arrives and dispatched marked `tooLarge`.
   */
  maxEventBytes?: number;
  /**
   * A connection that delivers this many characters without completing an event
   * or moving the last event id is failed as broken. Default twice `maxEventBytes`.
   */
  maxCharsWithoutEvent?: number;
  /** A connection that receives nothing at all for this long is restarted. */
  idleTimeoutMs?: number;
  /** The base reconnection delay until the feed sends `retry:`. */
  initialRetryMs?: number;
  /** No reconnection comes sooner than this, whatever `retry:` says. */
  minRetryMs?: number;
  /** Identical log lines (same message and reason) are written at most once per this. */
  logRepeatMs?: number;
  /** The cap of every delay, and the delay after a response that is not an event stream. */
  maxRetryMs?: number;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Receives structured log records. */
  log?: (record: Record<string, unknown>) => void;
}

/**
 * Consumes an SSE feed forever, following the WHATWG reconnection rules: it resends
 * the last event id as `Last-Event-ID`, honours `retry:`, reconnects after errors and
 * after the end of a response with capped, jittered exponential backoff, retries 5xx,
 * 408 and 429 after `Retry-After`, retries any other response at the cap, and restarts
 * a connection that stays silent for `idleTimeoutMs`. It resolves only when `signal`
 * aborts, and rejects only with what `onChunk` or `onStatus` throw.
 *
 * Whatever the feed sends, the event loop stays responsive: a body whose reads
 * resolve at once (buffered, or inflating a small compressed body) never returns
 * to the event loop by itself, so reading yields to it every `YIELD_EVERY_MS`;
 * and a connection that sends `maxCharsWithoutEvent` without an event is failed.
 */
export async function consumeFeed({
  url,
  lastEventId = "",
  signal,
  onChunk,
  onStatus = () => {},
  fetch = globalThis.fetch,
  maxEventBytes = 1 << 20,
  maxCharsWithoutEvent = 2 * maxEventBytes,
  idleTimeoutMs = 45_000,
  initialRetryMs = 1_000,
  minRetryMs = 100,
  logRepeatMs = 10_000,
  maxRetryMs = 30_000,
  random = Math.random,
  log: write = () => {},
}: ConsumeFeedOptions): Promise<void> {
  const log = withoutRepeats(write, logRepeatMs);
  const status: FeedStatus = { state: "connecting", reconnects: 0, lastError: null };
  const setState = (state: FeedStatus["state"]) => {
    status.state = state;
    onStatus({ ...status });
  };
  const target = new URL(url);
  const feed = redactUrl(target.href);
  let retryMs: number | undefined;
  // Failed connections since the last one that delivered an event.
  let failures = 0;

  /** One connection, from fetch to its end; returns why it ended, or null on abort. */
  async function connect(): Promise<Failure | null> {
    const idle = new AbortController();
    const idleReason = new Error(`nothing received for ${idleTimeoutMs} ms`);
    let timer = setTimeout(() => idle.abort(idleReason), idleTimeoutMs);
    const connection = AbortSignal.any([signal, idle.signal]);
    const failed = (error: unknown): Failure | null =>
      signal.aborted ? null : {
        reason: idle.signal.aborted
          ? `idle timeout: ${idleReason.message}`
          : describe(error, target),
      };
    try {
      const headers: Record<string, string> = {
        "Accept": "text/event-stream",
        "Cache-Control": "no-cache",
      };
      if (lastEventId !== "") headers["Last-Event-ID"] = utf8ByteString(lastEventId);
      let response: Response;
      try {
        response = await fetch(url, { headers, signal: connection });
      } catch (error) {
        return failed(error);
      }
      const s = response.status;
      if (s !== 200) {
        await response.body?.cancel().catch(() => {});
        const reason = `HTTP ${s} ${response.statusText}`;
        if (s >= 500 || s === 408 || s === 429) {
          return { reason, retryAfterMs: parseRetryAfter(response.headers.get("retry-after")) };
        }
        return { reason, atCap: true };
      }
      const type = response.headers.get("content-type");
      if (type?.split(";")[0].trim().toLowerCase() !== "text/event-stream" || !response.body) {
        await response.body?.cancel().catch(() => {});
        return { reason: `not an event stream: content-type ${type}`, atCap: true };
      }
      setState("open");
      log({ level: "info", msg: "feed open", url: feed, lastEventId });
      const parser = new SseParser({ maxEventChars: maxEventBytes, lastEventId });
      const reader = response.body.pipeThrough(new Utf8DecoderStream()).getReader();
      let quiet = 0;
      let yieldedAt = performance.now();
      try {
        while (true) {
          let result: ReadableStreamReadResult<string>;
          try {
            result = await reader.read();
          } catch (error) {
            return failed(error);
          }
          clearTimeout(timer);
          if (result.done) return { reason: "the feed ended the response" };
          const events = parser.push(result.value);
          retryMs = parser.retry ?? retryMs;
          if (events.length > 0 || parser.lastEventId !== lastEventId) {
            failures = 0;
            quiet = 0;
            lastEventId = parser.lastEventId;
            await onChunk({ events, lastEventId });
          } else if ((quiet += result.value.length) > maxCharsWithoutEvent) {
            return {
              reason: `no event in ${quiet} characters: the feed is broken`,
              level: "error",
            };
          }
          if (signal.aborted) return null;
          if (performance.now() - yieldedAt > YIELD_EVERY_MS) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            yieldedAt = performance.now();
          }
          timer = setTimeout(() => idle.abort(idleReason), idleTimeoutMs);
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
    } finally {
      clearTimeout(timer);
    }
  }

  try {
    while (!signal.aborted) {
      setState("connecting");
      log({ level: "info", msg: "feed connecting", url: feed, lastEventId });
      const failure = await connect();
      if (failure === null || signal.aborted) break;
      const base = Math.min(retryMs ?? initialRetryMs, maxRetryMs);
      // Grows from at least 1 ms, so that after `retry: 0` a failing feed still backs off.
      const ceiling = Math.min(maxRetryMs, Math.max(base, 1) * 2 ** (failures + 1));
      let delayMs = base + random() * (ceiling - base);
      if (failure.atCap) delayMs = maxRetryMs;
      if (failure.retryAfterMs !== undefined) {
        delayMs = Math.max(delayMs, Math.min(failure.retryAfterMs, maxRetryMs));
      }
      delayMs = Math.round(Math.max(delayMs, minRetryMs));
      failures++;
      status.reconnects++;
      status.lastError = failure.reason;
      log({
        level: failure.level ?? "warn",
        msg: "feed connection failed",
        reason: failure.reason,
        delayMs,
        reconnects: status.reconnects,
        lastEventId,
      });
      setState("backoff");
      await delay(delayMs, undefined, { signal }).catch(() => {}); // aborted: stopping
    }
  } finally {
    setState("stopped");
    log({ level: "info", msg: "feed stopped", lastEventId });
  }
}

// Long enough that yielding costs nothing measurable, short enough for /healthz.
const YIELD_EVERY_MS = 5;

/**
 * `log`, writing a line whose message and reason were written less than
 * `everyMs` ago only as a count: the next one written says how many it stands for.
 */
function withoutRepeats(
  log: (record: Record<string, unknown>) => void,
  everyMs: number,
): (record: Record<string, unknown>) => void {
  const seen = new Map<string, { at: number; repeated: number }>();
  return (record) => {
    const key = `${record.msg}\0${record.reason ?? ""}`;
    const now = performance.now();
    const last = seen.get(key);
    if (last && now - last.at < everyMs) {
      last.repeated++;
      return;
    }
    // A few messages times a few reasons; a feed that varies its reasons starts over.
    if (seen.size >= 64) seen.clear();
    seen.set(key, { at: now, repeated: 0 });
    log(last?.repeated ? { ...record, repeated: last.repeated } : record);
  };
}

interface Failure {
  reason: string;
  level?: "error";
  /** From a `Retry-After` header. */
  retryAfterMs?: number;
  /** Not an event stream at all: retry at the cap. */
  atCap?: boolean;
}

// What Deno's fetch says in its error's cause, and the code Node and postgres.js give it.
const CONNECT_ERRORS: [RegExp, string][] = [
  [/connection refused/i, "ECONNREFUSED"],
  [/connection reset/i, "ECONNRESET"],
  [/timed out/i, "ETIMEDOUT"],
  [/dns error|failed to lookup address|name or service not known/i, "ENOTFOUND"],
  [/network is unreachable/i, "ENETUNREACH"],
  [/certificate|tls|ssl/i, "TLS"],
];

/**
 * Why a connection failed, with the host, port and error code where fetch
 * only says "fetch failed" and hides the reason in its cause. The cause's own
 * text is left out: it repeats the URL, query and all.
 */
function describe(error: unknown, url: URL): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : "";
  const code = CONNECT_ERRORS.find(([pattern]) => pattern.test(cause))?.[1];
  if (!code) return error.message;
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return `${error.message}: ${code} connecting to ${url.hostname}:${port}`;
}

/** Headers hold byte strings; WHATWG sends the id as UTF-8. */
function utf8ByteString(s: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(s)) out += String.fromCharCode(byte);
  return out;
}

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
