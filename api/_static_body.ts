import type { Context } from "hono";
import { etagMatches } from "./_etag.ts";

// What protects a page beyond its CSP; the API's JSON needs none of it.
const PAGE_HEADERS = {
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
};

/**
 * A handler for a body that never changes while the process runs: built on
 * first use, with a strong ETag, revalidated by clients after an hour.
 */
export function staticBody(type: string, build: () => string, { csp }: { csp?: string } = {}) {
  let prepared: Promise<{ bytes: Uint8Array<ArrayBuffer>; etag: string }> | undefined;
  const prepare = async () => {
    const bytes = new TextEncoder().encode(build());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const etag = `"${
      Array.from(digest.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("")
    }"`;
    return { bytes, etag };
  };
  return async (c: Context): Promise<Response> => {
    prepared ??= prepare();
    const { bytes, etag } = await prepared;
    const headers: Record<string, string> = {
      ETag: etag,
      "Cache-Control": "public, max-age=3600",
      ...(csp ? { "Content-Security-Policy": csp, ...PAGE_HEADERS } : {}),
    };
    const ifNoneMatch = c.req.header("If-None-Match");
    if (ifNoneMatch && etagMatches(ifNoneMatch, etag)) {
      return c.body(null, 304, headers);
    }
    return c.body(bytes, 200, {
      ...headers,
      "Content-Type": type,
      "Content-Length": String(bytes.length),
    });
  };
}
