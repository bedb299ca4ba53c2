import type { Context, TypedResponse } from "hono";
import { HTTPException } from "hono/http-exception";
import type { JSONParsed } from "hono/utils/types";
import type { Versioned } from "../../db/mod.ts";
import { etagMatches } from "../_etag.ts";
import { jsonText } from "../_router.ts";
import type { Dependency, PageCache } from "./page_cache.ts";
import { pageKey } from "./page_key.ts";

type NotModified = TypedResponse<Record<never, never>, 304, string>;

/**
 * Answers a student's or an exam's page with an ETag made of its version (a
 * digest of the student's results, the exam's aggregate rows). A cached body
 * that is `current` (no change to its dependency reported since it was read)
 * is sent, or a matching If-None-Match answered 304, without asking the
 * database. Otherwise, when a conditional request or a cached body is at hand,
 * it first reads only the version, one index range: a matching If-None-Match
 * gets a 304, a cached body of that version is sent again, and only otherwise
 * is the page read.
 */
export async function versioned<T>(
  c: Context,
  cache: PageCache,
  { dependency, page, version, read, missing }: {
    dependency: Dependency;
    /** The validated parameters of the page, which make its key in the cache. */
    page: { after?: string | number; limit?: number };
    version: () => Promise<string | null>;
    read: () => Promise<Versioned<T> | null>;
    missing: string;
  },
): Promise<TypedResponse<JSONParsed<T>, 200, "json"> | NotModified> {
  const key = pageKey(dependency, page);
  const cached = cache.get<T>(key, dependency);
  const ifNoneMatch = c.req.header("If-None-Match");
  if (cached?.current) {
    cache.answered.memory++;
    return answer(c, cached.value, ifNoneMatch);
  }
  // Taken before the database is asked: a change reported meanwhile may not be in the answer.
  const generation = cache.generation(dependency);
  if (cached || ifNoneMatch) {
    const current = await version();
    if (current === null) throw new HTTPException(404, { message: missing });
    if (cached?.value.version === current) {
      cache.answered.version++;
      cache.set(key, cached.value, dependency, generation);
      return answer(c, cached.value, ifNoneMatch);
    }
    if (ifNoneMatch && etagMatches(ifNoneMatch, etag(current))) {
      cache.answered.version++;
      return c.body(null, 304, headersOf(current)) as unknown as NotModified;
    }
  }
  const found = await read();
  if (!found) throw new HTTPException(404, { message: missing });
  cache.answered.read++;
  cache.set(key, found, dependency, generation);
  return jsonText(c, found.body, headersOf(found.version));
}

function answer<T>(
  c: Context,
  { version, body }: Versioned<T>,
  ifNoneMatch: string | undefined,
): TypedResponse<JSONParsed<T>, 200, "json"> | NotModified {
  const headers = headersOf(version);
  if (ifNoneMatch && etagMatches(ifNoneMatch, headers.ETag)) {
    return c.body(null, 304, headers) as unknown as NotModified;
  }
  return jsonText(c, body, headers);
}

/** The validators of a versioned page. */
export const headersOf = (version: string) => ({
  ETag: etag(version),
  "Cache-Control": "no-cache",
});

// The prefix changes whenever the shape of the bodies does.
const etag = (version: string) => `"v1-${version}"`;
