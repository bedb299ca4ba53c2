export { type ApiOptions, createApi, type LogEntry } from "./create_api.ts";
export type { IngestSnapshot, IngestStatsSource } from "./ingest_stats.ts";
export type { LastError, LastErrors } from "./operations.ts";
export { serveHttp } from "./serve_http.ts";
export {
  type ChangeFeed,
  type Changes,
  createChangeFeed,
  createReadCache,
  type ReadCache,
} from "./read_cache/mod.ts";
export {
  createEventHub,
  type EventFilter,
  type EventHub,
  type EventHubStats,
  type EventRequest,
} from "./event_hub.ts";
