import assert from "node:assert/strict";
import {
  consumeFeed,
  type ConsumeFeedOptions,
  type FeedChunk,
  type FeedStatus,
} from "../../ingest/sse_connection.ts";
import type { SseEvent } from "../../ingest/sse_parser.ts";
import { serveFeed } from "../_feed_server.ts";
import { until } from "../_wait.ts";

const encoder = new TextEncoder();
const BOM = [0xef, 0xbb, 0xbf];

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** This file's servers answer within milliseconds: poll every 2 ms, for 3 s at most. */
function waitFor(what: string, ready: () => boolean, timeoutMs = 3_000): Promise<true> {
  return until(what, ready, timeoutMs, 2);
}

/** A pause between body writes, so that each write reaches the client as its own chunk. */
type Part = string | number[] | { pause: number };

/**
 * A response body that writes `parts` in order, then ends, or with `open` stays open
 * until the client cancels it. `cancelled` resolves when the client cancels.
 */
function body(parts: Part[], { open = false } = {}) {
  const stop = new AbortController();
  const cancelled = Promise.withResolvers<void>();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      for (const part of parts) {
        if (stop.signal.aborted) return;
        if (typeof part === "string") controller.enqueue(encoder.encode(part));
        else if (Array.isArray(part)) controller.enqueue(new Uint8Array(part));
        else await pause(part.pause, stop.signal);
      }
      if (!open && !stop.signal.aborted) controller.close();
    },
    cancel() {
      stop.abort();
      cancelled.resolve();
    },
  });
  return { stream, cancelled: cancelled.promise };
}

function sse(parts: Part[], options: { open?: boolean } = {}): Response {
  return new Response(body(parts, options).stream, {
    headers: { "content-type": "text/event-stream" },
  });
}

/** Splits a string into one-byte parts with a pause after each, to split every character. */
function byteByByte(text: number[] | string): Part[] {
  const bytes = typeof text === "string" ? [...encoder.encode(text)] : text;
  return bytes.flatMap((b) => [[b], { pause: 1 }]);
}

/** Runs consumeFeed with small delays and records everything it reports. */
function startConsumer(options: Partial<ConsumeFeedOptions> & { url: string }) {
  const controller = new AbortController();
  const chunks: FeedChunk[] = [];
  const statuses: FeedStatus[] = [];
  const logs: Record<string, unknown>[] = [];
  const done = consumeFeed({
    signal: controller.signal,
    onChunk: (chunk) => {
      chunks.push(chunk);
    },
    onStatus: (status) => statuses.push(status),
    log: (record) => logs.push(record),
    initialRetryMs: 5,
    maxRetryMs: 40,
    minRetryMs: 0,
    logRepeatMs: 0,
    idleTimeoutMs: 2000,
    random: () => 0,
    ...options,
  });
  return {
    chunks,
    statuses,
    logs,
    done,
    events: (): SseEvent[] => chunks.flatMap((chunk) => chunk.events),
    data: (): string[] => chunks.flatMap((chunk) => chunk.events.map((event) => event.data)),
    failures: () => logs.filter((record) => record.msg === "feed connection failed"),
    abort: () => controller.abort(),
    /** Aborts and waits for consumeFeed to return; how long that took, in ms. */
    async abortAndTime(): Promise<number> {
      const start = performance.now();
      controller.abort();
      await done;
      return performance.now() - start;
    },
    async [Symbol.asyncDispose]() {
      controller.abort();
      await done;
    },
  };
}

Deno.test("consumeFeed asks for an event stream, uncached, without Last-Event-ID at first", async () => {
  await using server = serveFeed(() => sse(["data: a\n\n"], { open: true }));
  await using consumer = startConsumer({ url: server.url });
  await waitFor("an event", () => consumer.chunks.length === 1);
  assert.deepEqual(server.requests.map(({ at: _, ...r }) => r), [
    { lastEventId: null, accept: "text/event-stream", cacheControl: "no-cache" },
  ]);
  assert.deepEqual(consumer.chunks, [{
    events: [{ type: "message", data: "a", lastEventId: "" }],
    lastEventId: "",
  }]);
});

Deno.test("consumeFeed sends the stored last event id on its first request", async () => {
  await using server = serveFeed(() => sse(["data: a\n\n"], { open: true }));
  await using consumer = startConsumer({ url: server.url, lastEventId: "041" });
  await waitFor("an event", () => consumer.chunks.length === 1);
  assert.equal(server.requests[0].lastEventId, "041");
  assert.equal(consumer.events()[0].lastEventId, "041");
});

Deno.test("consumeFeed reconnects after the end of a body, resending the last event id", async () => {
  await using server = serveFeed((_, n) =>
    n === 0
      ? sse(["id: 1\ndata: a\n\n", { pause: 5 }, "id: 2\ndata: b\n\n"])
      : sse(["id: 3\ndata: c\n\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("event c", () => consumer.data().includes("c"));
  assert.deepEqual(server.requests.map((r) => r.lastEventId), [null, "2"]);
  assert.deepEqual(consumer.data(), ["a", "b", "c"]);
  assert.deepEqual(consumer.chunks.map((c) => c.lastEventId), ["1", "2", "3"]);
  assert.equal(consumer.failures()[0].reason, "the feed ended the response");
});

Deno.test("consumeFeed discards an event cut off by the end of a body, and its id", async () => {
  await using server = serveFeed((_, n) =>
    n === 0
      ? sse(["id: 1\ndata: a\n\nid: 2\ndata: b\n"])
      : sse(["id: 2\ndata: b\n\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("two events", () => consumer.data().length === 2);
  assert.deepEqual(server.requests.map((r) => r.lastEventId), [null, "1"]);
  assert.deepEqual(consumer.data(), ["a", "b"]);
});

Deno.test("consumeFeed sends no Last-Event-ID after an empty id", async () => {
  await using server = serveFeed((_, n) =>
    n === 0 ? sse(["data: a\n\nid:\n\n"]) : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url, lastEventId: "7" });
  await waitFor("a second request", () => server.requests.length === 2);
  assert.deepEqual(server.requests.map((r) => r.lastEventId), ["7", null]);
  assert.deepEqual(consumer.chunks, [{
    events: [{ type: "message", data: "a", lastEventId: "7" }],
    lastEventId: "",
  }]);
});

Deno.test("consumeFeed resumes after the id of a block without data", async () => {
  await using server = serveFeed((_, n) =>
    n === 0 ? sse(["id: 9\n\n"]) : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("a second request", () => server.requests.length === 2);
  assert.equal(server.requests[1].lastEventId, "9");
  assert.deepEqual(consumer.chunks, [{ events: [], lastEventId: "9" }]);
});

Deno.test("consumeFeed sends a non-ASCII last event id as UTF-8", async () => {
  await using server = serveFeed((_, n) =>
    n === 0 ? sse(["id: é日😀\n\n"]) : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("a second request", () => server.requests.length === 2);
  const header = server.requests[1].lastEventId ?? "";
  const bytes = Uint8Array.from(header, (c) => c.charCodeAt(0));
  assert.equal(new TextDecoder().decode(bytes), "é日😀");
  assert.equal(consumer.chunks[0].lastEventId, "é日😀");
});

Deno.test("consumeFeed strips exactly one BOM at the start of each connection", async () => {
  const data = (s: string) => [...encoder.encode(s)];
  const bodies: Part[][] = [
    // The BOM split across chunks.
    [[0xef], { pause: 5 }, [0xbb, 0xbf, ...data("data: a")], { pause: 5 }, "\n\n"],
    // A new connection strips its own BOM, even after one was stripped before.
    [BOM, "data: b\n\n"],
    // A second BOM is part of the first field name, which spoils the "c" line.
    [[...BOM, ...BOM, ...data("data: c\ndata: d\n\n")]],
    // Without a BOM nothing is stripped.
    ["data: e\n\n"],
  ];
  await using server = serveFeed((_, n) =>
    n < bodies.length ? sse(bodies[n]) : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("the last body", () => server.requests.length === bodies.length + 1);
  assert.deepEqual(consumer.data(), ["a", "b", "d", "e"]);
});

Deno.test("consumeFeed decodes multi-byte characters split across byte chunks", async () => {
  await using server = serveFeed((_, n) =>
    n === 0 ? sse(byteByByte("data: é€😀\n\n"), { open: true }) : sse([])
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("an event", () => consumer.chunks.length === 1);
  assert.deepEqual(consumer.data(), ["é€😀"]);
});

Deno.test("consumeFeed parses a stream written one byte at a time", async () => {
  const stream = [
    ...BOM,
    ...encoder.encode(
      ": hi\r\nid: 1\r\nevent: score\r\ndata: é\r\ndata:  x\r\n\r\n" +
        "event: other\r\rid\ndata\n\nid: 2\0\nretry: 5\ndata: 😀\r\n\r\nid: 3\ndata: cut",
    ),
  ];
  await using server = serveFeed((_, n) =>
    n === 0 ? sse(byteByByte(stream)) : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("a second request", () => server.requests.length === 2);
  assert.deepEqual(consumer.events(), [
    { type: "score", data: "é\n x", lastEventId: "1" },
    { type: "message", data: "", lastEventId: "" },
    { type: "message", data: "😀", lastEventId: "" },
  ]);
  assert.equal(server.requests[1].lastEventId, null);
});

Deno.test("consumeFeed decodes invalid UTF-8 as a lone surrogate, which no valid UTF-8 decodes to", async () => {
  await using server = serveFeed(() => sse([[...encoder.encode("data: a"), 0xff, 0x0a, 0x0a]]));
  await using consumer = startConsumer({ url: server.url });
  await waitFor("an event", () => consumer.chunks.length === 1);
  assert.deepEqual(consumer.data(), ["a\uDC80"]);
});

Deno.test("consumeFeed delivers all events a network chunk completes in one call", async () => {
  await using server = serveFeed(() =>
    sse(["data: a\n\ndata: b\n\ndata: c", { pause: 20 }, "\n\ndata: d"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url });
  await waitFor("event c", () => consumer.data().includes("c"));
  await pause(20);
  assert.deepEqual(consumer.chunks.map((c) => c.events.map((e) => e.data)), [["a", "b"], ["c"]]);
});

Deno.test("consumeFeed reconnects after a network error mid-body", async () => {
  // A raw TCP server, to close the socket in the middle of a chunked body.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lastEventIds: (string | null)[] = [];
  const serving = (async () => {
    for (let n = 0; n < 2; n++) {
      const conn = await listener.accept();
      const request = new Uint8Array(4096);
      const head = new TextDecoder().decode(request.subarray(0, await conn.read(request) ?? 0));
      lastEventIds.push(head.match(/^last-event-id: (.*)\r$/im)?.[1] ?? null);
      const event = n === 0 ? "id: 1\ndata: a\n\n" : "id: 2\ndata: b\n\n";
      await conn.write(encoder.encode(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" +
          `${event.length.toString(16)}\r\n${event}\r\n`,
      ));
      await pause(10);
      conn.close();
    }
  })();
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/feed`;
  await using consumer = startConsumer({ url, maxRetryMs: 1000 });
  await serving;
  await waitFor("two failures", () => consumer.failures().length === 2);
  assert.deepEqual(lastEventIds, [null, "1"]);
  assert.deepEqual(consumer.data(), ["a", "b"]);
  assert.match(consumer.failures()[0].reason as string, /error reading a body/);
});

Deno.test("consumeFeed keeps retrying a feed that refuses connections, with capped backoff", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${listener.addr.port}/feed`;
  listener.close();
  await using consumer = startConsumer({
    url,
    random: () => 0.5,
    initialRetryMs: 2,
    maxRetryMs: 20,
  });
  await waitFor("six failures", () => consumer.failures().length >= 6);
  // base 2, ceilings 4, 8, 16, 20 (the cap), 20: halfway between base and ceiling.
  assert.deepEqual(consumer.failures().slice(0, 6).map((r) => r.delayMs), [3, 5, 9, 11, 11, 11]);
  const last = consumer.statuses.at(-1)!;
  assert.ok(last.reconnects >= 6);
  assert.ok(typeof last.lastError === "string" && last.lastError.length > 0);
});

Deno.test("consumeFeed waits the jittered backoff before each reconnect", async () => {
  await using server = serveFeed((_, n) =>
    n < 4 ? new Response("busy", { status: 503 }) : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({
    url: server.url,
    random: () => 1,
    initialRetryMs: 10,
    maxRetryMs: 50,
  });
  await waitFor("five requests", () => server.requests.length === 5);
  const delays = consumer.failures().map((r) => r.delayMs);
  assert.deepEqual(delays, [20, 40, 50, 50]);
  for (let i = 0; i < delays.length; i++) {
    const gap = server.requests[i + 1].at - server.requests[i].at;
    assert.ok(gap >= (delays[i] as number) - 2, `gap ${gap} ms before request ${i + 1}`);
  }
});

Deno.test("consumeFeed resets the backoff after a connection that delivered events", async () => {
  await using server = serveFeed((_, n) => {
    if (n === 3) return sse(["data: a\n\n"]);
    if (n === 6) return sse([": open\n"], { open: true });
    return new Response(null, { status: 500 });
  });
  await using consumer = startConsumer({ url: server.url, random: () => 1, maxRetryMs: 1000 });
  await waitFor("seven requests", () => server.requests.length === 7);
  assert.deepEqual(consumer.failures().map((r) => r.delayMs), [10, 20, 40, 10, 20, 40]);
});

Deno.test("consumeFeed takes retry: as the base delay, capped", async () => {
  await using server = serveFeed((_, n) => {
    if (n === 0) return sse(["retry: 30\ndata: a\n\n"]);
    if (n === 1) return sse(["retry: 99999999\ndata: b\n\n"]);
    if (n === 2) return sse(["retry: soon\ndata: c\n\n"]);
    return sse([": open\n"], { open: true });
  });
  await using consumer = startConsumer({ url: server.url, maxRetryMs: 60 });
  await waitFor("four requests", () => server.requests.length === 4);
  assert.deepEqual(consumer.failures().map((r) => r.delayMs), [30, 60, 60]);
  assert.ok(server.requests[1].at - server.requests[0].at >= 28);
});

Deno.test("consumeFeed waits for Retry-After seconds after a 503, and aborts that wait", async () => {
  await using server = serveFeed(() =>
    new Response("down", { status: 503, headers: { "retry-after": "2" } })
  );
  const consumer = startConsumer({ url: server.url, maxRetryMs: 5000 });
  await waitFor("the backoff", () => consumer.statuses.at(-1)?.state === "backoff");
  assert.equal(consumer.failures()[0].delayMs, 2000);
  assert.match(consumer.failures()[0].reason as string, /^HTTP 503/);
  assert.ok(await consumer.abortAndTime() < 500);
  assert.equal(consumer.statuses.at(-1)?.state, "stopped");
  assert.equal(server.requests.length, 1);
});

Deno.test("consumeFeed honours an HTTP-date Retry-After after a 429, capped", async () => {
  await using server = serveFeed((_, n) => {
    const seconds = n === 0 ? 2 : 3600;
    const date = new Date(Date.now() + seconds * 1000).toUTCString();
    return new Response(null, { status: 429, headers: { "retry-after": date } });
  });
  await using consumer = startConsumer({ url: server.url, maxRetryMs: 5000, random: () => 0 });
  await waitFor("the first backoff", () => consumer.failures().length === 1);
  const first = consumer.failures()[0].delayMs as number;
  // An HTTP date has whole seconds: 2 s from now is 1 to 2 s away.
  assert.ok(first > 900 && first <= 2000, `delay ${first}`);
});

Deno.test("consumeFeed caps a Retry-After beyond maxRetryMs", async () => {
  await using server = serveFeed((_, n) =>
    n === 0
      ? new Response(null, { status: 503, headers: { "retry-after": "3600" } })
      : sse([": open\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url, maxRetryMs: 30 });
  await waitFor("a second request", () => server.requests.length === 2);
  assert.deepEqual(consumer.failures().map((r) => r.delayMs), [30]);
});

Deno.test("consumeFeed retries 500, 502, 408 and 429 with backoff", async () => {
  const statuses = [500, 502, 408, 429];
  await using server = serveFeed((_, n) =>
    n < statuses.length
      ? new Response(null, { status: statuses[n] })
      : sse(["data: ok\n\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url, random: () => 0, maxRetryMs: 1000 });
  await waitFor("the event", () => consumer.chunks.length === 1);
  assert.deepEqual(consumer.failures().map((r) => r.delayMs), [5, 5, 5, 5]);
  assert.deepEqual(
    consumer.failures().map((r) => (r.reason as string).slice(0, 8)),
    ["HTTP 500", "HTTP 502", "HTTP 408", "HTTP 429"],
  );
});

Deno.test("consumeFeed never consumes a response that is not an event stream, and retries it at the cap", async () => {
  const cancelled: Promise<void>[] = [];
  const unread = (status: number, type: string) => {
    const { stream, cancelled: c } = body(["data: not an event\n\n"], { open: true });
    cancelled.push(c);
    return new Response(stream, { status, headers: { "content-type": type } });
  };
  await using server = serveFeed((_, n) => {
    if (n === 0) return unread(404, "text/event-stream");
    if (n === 1) return unread(200, "text/html");
    if (n === 2) return new Response(null, { status: 204 });
    return new Response(body(["data: ok\n\n"], { open: true }).stream, {
      headers: { "content-type": "Text/Event-Stream; charset=utf-8" },
    });
  });
  await using consumer = startConsumer({ url: server.url, maxRetryMs: 25, random: () => 0 });
  await waitFor("the event", () => consumer.chunks.length === 1);
  await Promise.all(cancelled);
  assert.deepEqual(consumer.data(), ["ok"]);
  assert.deepEqual(consumer.failures().map((r) => r.delayMs), [25, 25, 25]);
  assert.match(
    consumer.failures()[1].reason as string,
    /^not an event stream: content-type text\/html$/,
  );
  assert.equal(consumer.statuses.at(-1)?.reconnects, 3);
});

Deno.test("consumeFeed restarts a connection that sends nothing for the idle timeout", async () => {
  await using server = serveFeed((_, n) =>
    n === 0 ? sse(["id: 1\ndata: a\n\n"], { open: true }) : sse(["data: b\n\n"], { open: true })
  );
  await using consumer = startConsumer({ url: server.url, idleTimeoutMs: 60 });
  await waitFor("event b", () => consumer.data().includes("b"));
  assert.ok(server.requests[1].at - server.requests[0].at >= 58);
  assert.equal(server.requests[1].lastEventId, "1");
  assert.match(consumer.failures()[0].reason as string, /^idle timeout/);
  assert.match(consumer.statuses.at(-1)?.lastError ?? "", /^idle timeout/);
});

Deno.test("consumeFeed keeps a connection that sends only comments", async () => {
  const keepAlive = Array.from({ length: 8 }, () => [{ pause: 20 }, ":\n"]).flat();
  await using server = serveFeed(() => sse(["data: a\n\n", ...keepAlive], { open: true }));
  await using consumer = startConsumer({ url: server.url, idleTimeoutMs: 100 });
  await waitFor("the event", () => consumer.chunks.length === 1);
  await pause(150);
  assert.equal(server.requests.length, 1);
  assert.equal(consumer.failures().length, 0);
});

Deno.test("consumeFeed restarts a connection whose response headers never come", async () => {
  await using server = serveFeed(async (_, n, closing) => {
    if (n === 0) await pause(10_000, closing);
    return sse(["data: b\n\n"], { open: true });
  });
  await using consumer = startConsumer({ url: server.url, idleTimeoutMs: 50 });
  await waitFor("the event", () => consumer.chunks.length === 1);
  assert.match(consumer.failures()[0].reason as string, /^idle timeout/);
});

Deno.test("consumeFeed skips an oversized event and goes on past it on the same connection", async () => {
  await using server = serveFeed(() =>
    sse([`id: 1\ndata: a\n\nid: 2\ndata: ${"x".repeat(200)}\n\nid: 3\ndata: c\n\n`], {
      open: true,
    })
  );
  await using consumer = startConsumer({ url: server.url, maxEventBytes: 100 });
  await waitFor("event c", () => consumer.data().includes("c"));
  assert.deepEqual(
    consumer.events().map((e) => [e.lastEventId, e.data.length, e.tooLarge ?? null]),
    [["1", 1, null], ["2", 200, 211], ["3", 1, null]],
  );
  assert.deepEqual(server.requests.map((r) => r.lastEventId), [null]);
  assert.deepEqual(consumer.failures(), []);
});

Deno.test("consumeFeed fails a connection whose never-ending line brings no event", async () => {
  const served: Promise<void>[] = [];
  let sent = 0;
  await using server = serveFeed((_, n) => {
    if (n > 0) return sse([": open\n"], { open: true });
    const chunk = encoder.encode("x".repeat(16 * 1024));
    const cancelled = Promise.withResolvers<void>();
    served.push(cancelled.promise);
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(encoder.encode("data: ")),
      pull(controller) {
        sent += chunk.length;
        controller.enqueue(chunk);
      },
      cancel: () => cancelled.resolve(),
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  await using consumer = startConsumer({ url: server.url, maxEventBytes: 1 << 20 });
  await waitFor("the reconnect", () => server.requests.length === 2, 10_000);
  await served[0];
  assert.match(String(consumer.failures()[0].reason), /^no event in \d+ characters/);
  // The socket buffers hold some of what was sent, but far from everything.
  assert.ok(sent < 32 << 20, `sent ${sent} bytes`);
});

Deno.test("consumeFeed fails a connection whose data lines never end in a blank line", async () => {
  await using server = serveFeed((_, n) => {
    if (n > 0) return sse([": open\n"], { open: true });
    const lines = encoder.encode("data: 0123456789\n".repeat(1024));
    return new Response(
      new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(lines) }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  await using consumer = startConsumer({ url: server.url, maxEventBytes: 256 * 1024 });
  await waitFor("the reconnect", () => server.requests.length === 2, 10_000);
  assert.match(String(consumer.failures()[0].reason), /^no event in \d+ characters/);
  assert.deepEqual(consumer.chunks, []);
});

Deno.test("consumeFeed reads no further while onChunk's promise is pending", async () => {
  await using server = serveFeed(() =>
    sse(["data: a\n\n", { pause: 10 }, "data: b\n\n", { pause: 10 }, "data: c\n\n"], {
      open: true,
    })
  );
  const calls: string[] = [];
  const gate = Promise.withResolvers<void>();
  await using _consumer = startConsumer({
    url: server.url,
    onChunk: async (chunk) => {
      calls.push(chunk.events[0].data);
      if (calls.length === 1) await gate.promise;
    },
  });
  await waitFor("event a", () => calls.length === 1);
  await pause(50);
  assert.deepEqual(calls, ["a"]);
  gate.resolve();
  await waitFor("event c", () => calls.length === 3);
  assert.deepEqual(calls, ["a", "b", "c"]);
});

Deno.test("consumeFeed lets an in-flight onChunk finish on abort, then stops", async () => {
  await using server = serveFeed(() =>
    sse(["data: a\n\n", { pause: 10 }, "data: b\n\n"], { open: true })
  );
  const calls: string[] = [];
  const gate = Promise.withResolvers<void>();
  const consumer = startConsumer({
    url: server.url,
    onChunk: async (chunk) => {
      calls.push(chunk.events[0].data);
      await gate.promise;
      calls.push("settled");
    },
  });
  await waitFor("event a", () => calls.length === 1);
  consumer.abort();
  let resolved = false;
  consumer.done.then(() => resolved = true);
  await pause(30);
  assert.equal(resolved, false);
  gate.resolve();
  await consumer.done;
  assert.deepEqual(calls, ["a", "settled"]);
  assert.equal(consumer.statuses.at(-1)?.state, "stopped");
});

Deno.test("consumeFeed resolves promptly when aborted while reading", async () => {
  await using server = serveFeed(() => sse(["data: a\n\n"], { open: true }));
  const consumer = startConsumer({ url: server.url });
  await waitFor("event a", () => consumer.chunks.length === 1);
  assert.ok(await consumer.abortAndTime() < 500);
  assert.equal(consumer.failures().length, 0);
});

Deno.test("consumeFeed resolves promptly when aborted while waiting for response headers", async () => {
  await using server = serveFeed(async (_request, _n, closing) => {
    await pause(10_000, closing);
    return sse([]);
  });
  const consumer = startConsumer({ url: server.url });
  await waitFor("the request", () => server.requests.length === 1);
  assert.ok(await consumer.abortAndTime() < 500);
  assert.deepEqual(consumer.statuses.map((s) => s.state), ["connecting", "stopped"]);
});

Deno.test("consumeFeed propagates what onChunk throws", async () => {
  await using server = serveFeed(() => sse(["data: a\n\n"], { open: true }));
  const consumer = startConsumer({
    url: server.url,
    onChunk: () => {
      throw new Error("bug in onChunk");
    },
  });
  await assert.rejects(consumer.done, { message: "bug in onChunk" });
  assert.equal(consumer.statuses.at(-1)?.state, "stopped");
});

Deno.test("consumeFeed reports each state change through onStatus", async () => {
  await using server = serveFeed((_, n) =>
    n === 0 ? new Response(null, { status: 503 }) : sse(["data: a\n\n"], { open: true })
  );
  const consumer = startConsumer({ url: server.url });
  await waitFor("event a", () => consumer.chunks.length === 1);
  consumer.abort();
  await consumer.done;
  assert.deepEqual(consumer.statuses, [
    { state: "connecting", reconnects: 0, lastError: null },
    { state: "backoff", reconnects: 1, lastError: "HTTP 503 Service Unavailable" },
    { state: "connecting", reconnects: 1, lastError: "HTTP 503 Service Unavailable" },
    { state: "open", reconnects: 1, lastError: "HTTP 503 Service Unavailable" },
    { state: "stopped", reconnects: 1, lastError: "HTTP 503 Service Unavailable" },
  ]);
});

Deno.test("consumeFeed names the host, port and ECONNREFUSED of a refused connection, and logs no secret", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const controller = new AbortController();
  const statuses: FeedStatus[] = [];
  const logged: Record<string, unknown>[] = [];
  const done = consumeFeed({
    url: `http://user:s3cr3t@127.0.0.1:${port}/scores?token=t0ken`,
    signal: controller.signal,
    onChunk: () => {},
    onStatus: (s) => statuses.push(s),
    log: (record) => logged.push(record),
    initialRetryMs: 10,
  });
  await waitFor("a failure", () => statuses.some((s) => s.lastError !== null));
  controller.abort();
  await done;
  const error = statuses.find((s) => s.lastError !== null)!.lastError!;
  assert.match(error, new RegExp(`ECONNREFUSED connecting to 127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(JSON.stringify(logged), /s3cr3t|t0ken/);
});

Deno.test("consumeFeed returns to the event loop while a body's reads resolve at once", async () => {
  // A body served from memory resolves each read in a microtask, as a compressed
  // body inflating from a buffer does: without yielding, no timer and no request
  // would run until it ends.
  const chunk = encoder.encode("event: junk\ndata: x\n\n".repeat(3_000));
  let pulled = 0;
  const fetch = () =>
    Promise.resolve(
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (++pulled > 2_000) controller.close();
            else controller.enqueue(chunk);
          },
        }, { highWaterMark: 0 }),
        { headers: { "content-type": "text/event-stream" } },
      ),
    );
  let pulledWhenTimerRan: number | undefined;
  setTimeout(() => pulledWhenTimerRan = pulled, 0);
  await using consumer = startConsumer({ url: "http://feed.invalid/", fetch });
  await waitFor("the end of the body", () => consumer.failures().length > 0, 60_000);
  assert.ok(
    pulledWhenTimerRan !== undefined && pulledWhenTimerRan < 2_000,
    `${pulledWhenTimerRan}`,
  );
});

Deno.test("consumeFeed floors the delay after retry: 0 and writes repeated failures once", async () => {
  await using server = serveFeed(() => sse(["retry: 0\nid: 1\ndata: a\n\n"]));
  await using consumer = startConsumer({
    url: server.url,
    minRetryMs: 50,
    logRepeatMs: 60_000,
  });
  await waitFor("five connections", () => server.requests.length >= 5, 10_000);
  const failures = consumer.failures();
  assert.ok(failures.every((f) => (f.delayMs as number) >= 50), JSON.stringify(failures));
  assert.equal(failures.length, 1, "the same failure is written once a minute");
  const gaps = server.requests.slice(1).map((r, i) => r.at - server.requests[i].at);
  assert.ok(gaps.every((ms) => ms >= 45), `${gaps}`);
});
