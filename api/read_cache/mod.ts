export { type ChangeFeed, type Changes, createChangeFeed } from "./change_feed.ts";
export type { AnsweredRequest } from "./answer_from_cache.ts";
export type { AnswerSource, PageCache } from "./page_cache.ts";
export { type AnswerStyle, createReadCache, type ReadCache } from "./read_cache.ts";
export { versioned } from "./versioned.ts";
