export { type Checkpointer, createCheckpointer } from "./checkpointer.ts";
export { createIngest, type Ingest, type IngestOptions } from "./create_ingest.ts";
export { createDemoFeed } from "./demo_feed.ts";
export { feedIdentity, redactUrl } from "./feed_identity.ts";
export { type LeadershipOptions, type LeadershipStatus, runLeadership } from "./leadership.ts";
export type { Changed } from "./shard_router.ts";
export { consumeFeed, type FeedChunk, type FeedStatus } from "./sse_connection.ts";
export { IngestStats } from "./stats.ts";
export { type IngestThread, type IngestThreadOptions, startIngestThread } from "./ingest_thread.ts";
