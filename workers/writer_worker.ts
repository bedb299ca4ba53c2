/// <reference lib="deno.worker" />
// A writer in its own thread: it only translates messages; workers/writer.ts does the work.
import { createDb } from "../db/mod.ts";
import type { FromWriter, ToWriter } from "./protocol.ts";
import { createWriter, type Writer } from "./writer.ts";

let writer: Writer | undefined;
const post = (message: FromWriter) => self.postMessage(message);

self.onmessage = async ({ data }: MessageEvent<ToWriter>) => {
  switch (data.type) {
    case "start":
      writer = createWriter({
        writer: data.writer,
        maxBatchEvents: data.maxBatchEvents,
        fence: data.fence,
        origin: data.origin,
        connect: () =>
          createDb({
            url: data.databaseUrl,
            poolMode: data.poolMode,
            applicationName: `scorestream-writer-${data.writer}`,
            statementTimeoutMs: 10_000,
          }),
        onAck: (ack) => post({ type: "acked", ack }),
        onRetry: (retry) => post({ type: "retrying", retry }),
        onSkipped: (skipped) => post({ type: "skipped", skipped }),
        onFenced: (error) => post({ type: "fenced", error }),
      });
      // A cold start (this module's imports, then the connection) took 700 ms
      // on 2 cores; ingest waits for it rather than queueing the feed meanwhile.
      // Not for longer than a second: with Postgres away the writer retries anyway.
      await Promise.race([writer.connect(), new Promise((resolve) => setTimeout(resolve, 1_000))]);
      post({ type: "ready" });
      break;
    case "batch":
      writer?.enqueue(data.batch);
      break;
    case "close":
      await writer?.close();
      post({ type: "closed" });
      break;
  }
};
