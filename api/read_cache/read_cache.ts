import { type AnsweredRequest, answerFromCache } from "./answer_from_cache.ts";
import type { ChangeFeed } from "./change_feed.ts";
import { createPageCache, type PageCache } from "./page_cache.ts";

/** A fetch handler such as Hono's `app.fetch`, with whatever else it takes after the request. */
type Fetch<A extends unknown[]> = (request: Request, ...rest: A) => Response | Promise<Response>;

/** How the app's answers look, which the layer's own answers copy. */
export interface AnswerStyle {
  /** The headers every JSON response of the app carries. */
  headers: Record<string, string>;
  /** Told of every request the layer answers, as the app's own are logged and counted. */
  onAnswered: (answered: AnsweredRequest & { method: string }) => void;
}

/**
 * The read cache, one layer in front of the API: the pages of students and
 * exams that the routes store (`pages`, see `versioned()`), trusted from
 * `changes` when given, and a shortcut that answers a cached page before
 * routing (`inFrontOf`).
 */
export interface ReadCache {
  readonly pages: PageCache;
  /**
   * Set by the app the cache is in front of, once it is built: only then does
   * `inFrontOf` answer anything itself. An app whose answers depend on more
   * than the URL (CORS, by the Origin) does not set it.
   */
  answerAs(style: AnswerStyle): void;
  /** `app`'s fetch, behind the shortcut. */
  inFrontOf<A extends unknown[]>(app: { fetch: Fetch<A> }): Fetch<A>;
}

/** Builds the read cache; see `ReadCache`. */
export function createReadCache(
  { maxBytes = 32 << 20, changes }: {
    /**
     * Heap bytes of student and exam bodies kept for reuse while their
     * version holds (0 turns it off; default 32 MiB of the main heap, which
     * the start task caps at 96 MiB; the 600 exam pages of 300,000 demo
     * events take 17 MB). Each reuse reads the version from the database,
     * unless `changes` is given.
     */
    maxBytes?: number;
    /**
     * Reports every change to the database as it commits; only give it when
     * all writes go through it. Cached pages are then sent without asking the
     * database until a change to them is reported.
     */
    changes?: ChangeFeed;
  } = {},
): ReadCache {
  const pages = createPageCache({ maxBytes, changes });
  let answer: ((request: Request) => Response | undefined) | undefined;
  return {
    pages,
    answerAs({ headers, onAnswered }) {
      answer = answerFromCache({
        cache: pages,
        headers,
        onAnswered: (answered) => onAnswered({ method: "GET", ...answered }),
      });
    },
    inFrontOf(app) {
      return (request, ...rest) => answer?.(request) ?? app.fetch(request, ...rest);
    },
  };
}
