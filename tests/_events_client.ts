// A subscriber of GET /events for tests and benchmarks: reads the stream with
// eventsource-parser, as an EventSource would, and rebuilds the results it describes.
import { createParser } from "eventsource-parser";

/** One event as received. */
export interface ReceivedEvent {
  event: string;
  id: string | undefined;
  data: string;
  /** performance.now() at receipt. */
  at: number;
}

export interface Subscription {
  /** Every event, in order. */
  events: ReceivedEvent[];
  /** performance.now() of every comment line (heartbeats). */
  comments: number[];
  retry: number | undefined;
  /** How often it opened the stream again (with `reconnect`). */
  reconnects: number;
  /** studentId -> exam -> score: the `result` events applied in order, emptied at `reset`. */
  state: Map<string, Map<number, number>>;
  /** The id of the last event that had one: what EventSource would resend. */
  lastEventId(): string | undefined;
  /** Resolves when the stream ends (by the server, an error, or `close()`). */
  ended: Promise<void>;
  close(): void;
  /** Called after each event is applied. */
  onEvent?: (event: ReceivedEvent) => void;
}

/**
 * Opens `GET url` and follows it. Rejects when the response is not a 200
 * event stream (with the status and body in the message). With `reconnect`,
 * it does what EventSource does when the server ends the stream: after the
 * `retry` delay, it opens it again with the last id as `Last-Event-ID`.
 */
export async function subscribe(
  url: string,
  { lastEventId, reconnect = false }: { lastEventId?: string; reconnect?: boolean } = {},
): Promise<Subscription> {
  const abort = new AbortController();
  const subscription: Subscription = {
    events: [],
    comments: [],
    retry: undefined,
    reconnects: 0,
    state: new Map(),
    lastEventId: () => subscription.events.findLast((e) => e.id !== undefined)?.id ?? lastEventId,
    ended: Promise.resolve(),
    close: () => abort.abort(),
  };
  const parser = createParser({
    onEvent({ event = "message", id, data }) {
      const received = { event, id, data, at: performance.now() };
      subscription.events.push(received);
      if (event === "reset") subscription.state.clear();
      if (event === "result") {
        const { studentId, exam, score } = JSON.parse(data);
        let byExam = subscription.state.get(studentId);
        if (!byExam) subscription.state.set(studentId, byExam = new Map());
        byExam.set(exam, score);
      }
      subscription.onEvent?.(received);
    },
    onComment: () => subscription.comments.push(performance.now()),
    onRetry: (ms) => subscription.retry = ms,
  });
  const open = async () => {
    const last = subscription.lastEventId();
    const response = await fetch(url, {
      headers: last ? { "Last-Event-ID": last } : {},
      signal: abort.signal,
    });
    const type = response.headers.get("content-type") ?? "";
    if (response.status !== 200 || !type.startsWith("text/event-stream")) {
      throw new Error(`GET ${url}: ${response.status} ${type} ${await response.text()}`);
    }
    return response;
  };
  let response = await open();
  subscription.ended = (async () => {
    for (;;) {
      try {
        for await (const text of response.body!.pipeThrough(new TextDecoderStream())) {
          parser.feed(text);
        }
      } catch {
        // Aborted by close(), or cut off by the server.
      }
      if (!reconnect || abort.signal.aborted) return;
      parser.reset({ consume: false });
      await new Promise((resolve) => setTimeout(resolve, subscription.retry ?? 1000));
      try {
        response = await open();
        subscription.reconnects++;
      } catch {
        if (abort.signal.aborted) return;
      }
    }
  })();
  return subscription;
}

/** The number of results in a state. */
export function resultCount(state: Map<string, Map<number, number>>): number {
  let n = 0;
  for (const byExam of state.values()) n += byExam.size;
  return n;
}

/** `scores` (studentId -> exam -> score) kept to what a filter of /events matches. */
export function filtered(
  scores: Map<string, Map<number, number>>,
  { exam, studentId }: { exam?: number; studentId?: string },
): Map<string, Map<number, number>> {
  const kept = new Map<string, Map<number, number>>();
  for (const [id, byExam] of scores) {
    if (studentId !== undefined && id !== studentId) continue;
    const exams = new Map([...byExam].filter(([e]) => exam === undefined || e === exam));
    if (exams.size) kept.set(id, exams);
  }
  return kept;
}

/**
 * A Python client (run with `python3 -c`, the port as its argument) that
 * connects with SO_RCVBUF at 4 KiB, sends GET /events and reads nothing until
 * a line arrives on its stdin; then it reads until the server closes the
 * connection and prints how many bytes came and whether the chunked body was
 * complete. Deno cannot shrink a socket's receive buffer, and the loopback's
 * default takes megabytes before the server sees any backpressure.
 */
export const STALLED_SUBSCRIBER = String.raw`
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
sys.stdin.readline()
s.settimeout(30)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
complete = data.endswith(b"0\r\n\r\n")
print(f"closed after {len(data)} bytes, complete: {complete}")
`;
