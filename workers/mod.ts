export type { Ack, Batch, Retry } from "./protocol.ts";
export { startWriters, type WriterPool, type WriterPoolOptions } from "./writer_pool.ts";
