// The one test feed server: a loopback port that answers feed requests and records
// them, for the tests (tests/_service.ts, tests/_faults.ts, the SSE connection's
// tests) and the benchmarks (bench/_harness.ts).
import { createDemoFeed, type DemoFeedOptions } from "../ingest/demo_feed.ts";

/** A feed request as the feed server saw it. */
export interface FeedRequest {
  lastEventId: string | null;
  accept: string | null;
  cacheControl: string | null;
  /** performance.now() when it arrived. */
  at: number;
  /** performance.now() when its response was delivered or its connection went away. */
  closedAt?: number;
}

/** Answers the `n`-th request (0-based); `closing` aborts when the server closes. */
export type FeedAnswer = (
  request: Request,
  n: number,
  closing: AbortSignal,
) => Response | Promise<Response>;

/** A feed on a loopback port. */
export interface FeedServer extends AsyncDisposable {
  url: string;
  requests: FeedRequest[];
  /** performance.now() of the first chunk handed to the socket (only when timed). */
  firstByteAt(): number | undefined;
  close(): Promise<void>;
}

/**
 * Serves `answer` on a loopback port. When `timed` (or given `onSent`), every body
 * passes through a stream that notes when each chunk is handed to the socket.
 */
export function serveFeed(
  answer: FeedAnswer,
  { onSent, timed = onSent !== undefined }: {
    onSent?(chunk: Uint8Array, at: number): void;
    timed?: boolean;
  } = {},
): FeedServer {
  const requests: FeedRequest[] = [];
  const closing = new AbortController();
  let firstByteAt: number | undefined;
  const withTiming = (response: Response) => {
    if (!timed || !response.body) return response;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          const at = performance.now();
          firstByteAt ??= at;
          onSent?.(chunk, at);
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, response);
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (
    request,
    info,
  ) => {
    const logged: FeedRequest = {
      lastEventId: request.headers.get("last-event-id"),
      accept: request.headers.get("accept"),
      cacheControl: request.headers.get("cache-control"),
      at: performance.now(),
    };
    requests.push(logged);
    const closed = () => logged.closedAt ??= performance.now();
    info.completed.then(closed, closed);
    const response = answer(request, requests.length - 1, closing.signal);
    return response instanceof Response ? withTiming(response) : response.then(withTiming);
  });
  const close = async () => {
    closing.abort();
    await server.shutdown();
  };
  return {
    url: `http://127.0.0.1:${server.addr.port}/scores`,
    requests,
    firstByteAt: () => firstByteAt,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The demo feed. With `retryMs`, every response starts with `retry: retryMs`, so that
 * the many reconnections of a test do not each wait the default second.
 */
export function demoFeed(options: DemoFeedOptions & { retryMs?: number }): FeedAnswer {
  const { retryMs, ...feedOptions } = options;
  const handler = createDemoFeed(feedOptions);
  if (retryMs === undefined) return (request) => handler(request);
  const retry = new TextEncoder().encode(`retry: ${retryMs}\n\n`);
  return (request) => {
    const response = handler(request);
    if (response.status !== 200 || !response.body) return response;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({ start: (c) => c.enqueue(retry) }),
    );
    return new Response(body, response);
  };
}

/**
 * The demo feed with the whole body of a fresh connection rendered beforehand and
 * then served from memory, so that the feed's own CPU time (about 1 s per million
 * events) is not taken from the service on a 2-core machine; the bytes are the same.
 * A resuming connection (Last-Event-ID) is served live.
 */
export async function prerenderedDemoFeed(options: DemoFeedOptions): Promise<FeedAnswer> {
  const handler = createDemoFeed(options);
  const rendered: Uint8Array[] = [];
  for await (const chunk of handler(new Request("http://feed.invalid/")).body!) {
    rendered.push(chunk);
  }
  return (request) => {
    if (request.headers.has("last-event-id")) return handler(request);
    let next = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (next < rendered.length) controller.enqueue(rendered[next++]);
        else controller.close();
      },
    }, { highWaterMark: 1 });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  };
}
