import type { Fence, PoolMode } from "../db/mod.ts";
import type { Ack, Batch, FromWriter, Retry, Skipped, ToWriter } from "./protocol.ts";

/** How to start the writers. */
export interface WriterPoolOptions {
  count: number;
  databaseUrl: string;
  poolMode?: PoolMode;
  /** Carried by every commit (see `applyScores`). */
  fence?: Fence;
  /** This instance, named in every commit's notification. */
  origin?: string;
  maxBatchEvents?: number;
  onAck(writer: number, ack: Ack): void;
  onRetry?(writer: number, retry: Retry): void;
  onSkipped?(writer: number, skipped: Skipped): void;
  /** A writer died and was replaced; its unacknowledged batches are sent again. */
  onRestart?(writer: number, error: string): void;
  /** Postgres refused a writer's commit as fenced; that writer commits nothing more. */
  onFenced?(writer: number, error: string): void;
}

/** A fixed set of writer workers, each owning the students that hash to it. */
export interface WriterPool {
  readonly count: number;
  /** Resolves once every writer first said it is ready (see `FromWriter`). */
  ready(): Promise<void>;
  send(writer: number, batch: Batch): void;
  /** Events sent to each writer and not yet acknowledged. */
  pending(): number[];
  /** The characters (`Batch.chars`) of all batches not yet acknowledged. */
  pendingChars(): number;
  /** Terminates one writer as a crash would; it is replaced like one. */
  crash(writer: number): void;
  /**
   * Waits for every writer to finish what it was sent, then stops them; once
   * `signal` aborts, stops them at once.
   */
  close(signal?: AbortSignal): Promise<void>;
}

interface Slot {
  worker: Worker;
  unacked: Batch[];
  events: number;
  chars: number;
}

/**
 * Starts `count` writer workers. The pool keeps each writer's batches until
 * they are acknowledged, so a writer that dies (an uncaught error, a
 * terminated worker) is replaced and its batches are applied again in order:
 * applying is idempotent, so nothing is lost and nothing is counted twice.
 */
export function startWriters(
  {
    count,
    databaseUrl,
    poolMode = "session",
    fence,
    origin = "",
    maxBatchEvents = 50_000,
    onAck,
    onRetry,
    onSkipped,
    onRestart,
    onFenced,
  }: WriterPoolOptions,
): WriterPool {
  const slots: Slot[] = [];
  const readiness = Array.from({ length: count }, () => Promise.withResolvers<void>());
  let closing = false;

  function spawn(writer: number): Worker {
    const worker = new Worker(new URL("./writer_worker.ts", import.meta.url), { type: "module" });
    const post = (message: ToWriter) => worker.postMessage(message);
    worker.onmessage = ({ data }: MessageEvent<FromWriter>) => {
      if (data.type === "ready") {
        readiness[writer].resolve();
      } else if (data.type === "acked") {
        const slot = slots[writer];
        for (const id of data.ack.ids) {
          const at = slot.unacked.findIndex((b) => b.id === id);
          if (at < 0) continue;
          const [batch] = slot.unacked.splice(at, 1);
          slot.events -= batch.names.length + batch.quarantine.length;
          slot.chars -= batch.chars;
        }
        onAck(writer, data.ack);
      } else if (data.type === "retrying") {
        onRetry?.(writer, data.retry);
      } else if (data.type === "skipped") {
        onSkipped?.(writer, data.skipped);
      } else if (data.type === "fenced") {
        onFenced?.(writer, data.error);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      restart(writer, event.message);
    };
    worker.onmessageerror = () => restart(writer, "a message could not be deserialized");
    post({ type: "start", writer, databaseUrl, poolMode, maxBatchEvents, fence, origin });
    return worker;
  }

  function restart(writer: number, error: string) {
    const slot = slots[writer];
    slot.worker.terminate();
    if (closing && slot.unacked.length === 0) return;
    onRestart?.(writer, error);
    slot.worker = spawn(writer);
    for (const batch of slot.unacked) slot.worker.postMessage({ type: "batch", batch });
  }

  for (let i = 0; i < count; i++) {
    slots.push({ worker: spawn(i), unacked: [], events: 0, chars: 0 });
  }

  return {
    count,
    async ready() {
      await Promise.all(readiness.map((r) => r.promise));
    },
    send(writer, batch) {
      const slot = slots[writer];
      slot.unacked.push(batch);
      slot.events += batch.names.length + batch.quarantine.length;
      slot.chars += batch.chars;
      slot.worker.postMessage({ type: "batch", batch } satisfies ToWriter);
    },
    pending: () => slots.map((s) => s.events),
    pendingChars: () => slots.reduce((n, s) => n + s.chars, 0),
    crash(writer) {
      restart(writer, "terminated");
    },
    async close(signal) {
      closing = true;
      await Promise.all(slots.map((slot) =>
        new Promise<void>((resolve) => {
          const { worker } = slot;
          const previous = worker.onmessage;
          worker.onmessage = (event: MessageEvent<FromWriter>) => {
            previous?.call(worker, event);
            if (event.data.type === "closed") resolve();
          };
          worker.postMessage({ type: "close" } satisfies ToWriter);
          signal?.addEventListener("abort", () => resolve(), { once: true });
          if (signal?.aborted) resolve();
        })
      ));
      for (const slot of slots) slot.worker.terminate();
    },
  };
}
