export { type Checkpointer, createCheckpointer } from "./checkpointer.ts";
export { createDemoFeed } from "./demo_feed.ts";
export { feedIdentity, redactUrl } from "./feed_identity.ts";
export { type Changed, createRouter, type Router } from "./router.ts";
export { consumeFeed, type FeedChunk, type FeedStatus } from "./sse_connection.ts";
export { IngestStats } from "./stats.ts";
