import { PAGE_LIMIT } from "../_schemas.ts";
import type { Dependency } from "./page_cache.ts";

/**
 * The page cache's key of a student's or an exam's page: made of the
 * validated values of the parameters the route takes, never of the URL's
 * text, so that `?limit=05&after=x`, `?after=x&limit=5` and any other spelling
 * of one page share one entry. A newline cannot be in a studentId.
 */
export function pageKey(
  dependency: Dependency,
  { after, limit = PAGE_LIMIT }: { after?: string | number; limit?: number },
): string {
  return `${dependency}\n${limit}\n${after ?? ""}`;
}

const DIGITS = /^[0-9]{1,10}$/;
const PAGE = /^\/(students|exams)\/([^/]+)$/;
const MALFORMED_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/**
 * The key `pageKey()` gives the page a GET of `url` asks for, or undefined
 * when the URL is anything but a plain spelling of one (the router answers
 * those). It reads parameters as the route's validation does, and only ever
 * accepts less: a key found in the cache was made from a request the route
 * validated, so a URL mapped to it is one the route would accept as the same
 * page.
 */
export function pageKeyOf(url: string): string | undefined {
  const rest = url.slice(url.indexOf("/", url.indexOf("//") + 2));
  if (MALFORMED_PERCENT.test(rest)) return undefined;
  const mark = rest.indexOf("?");
  const match = PAGE.exec(mark < 0 ? rest : rest.slice(0, mark));
  if (!match) return undefined;
  let page: { after?: string | number; limit?: number } = {};
  if (mark >= 0) {
    const query = parseQuery(rest.slice(mark + 1));
    if (!query) return undefined;
    page = query;
  }
  let id: string;
  try {
    id = decodeURIComponent(match[2]);
  } catch {
    return undefined;
  }
  if (match[1] === "students") {
    if (typeof page.after === "string") {
      if (!DIGITS.test(page.after)) return undefined;
      page.after = Number(page.after);
    }
    return pageKey(`student:${id}`, page);
  }
  if (!DIGITS.test(id)) return undefined;
  return pageKey(`exam:${Number(id)}`, page);
}

function parseQuery(text: string): { after?: string; limit?: number } | undefined {
  const params = new URLSearchParams(text);
  const page: { after?: string; limit?: number } = {};
  for (const [name, value] of params) {
    if (name === "limit" && page.limit === undefined && DIGITS.test(value)) {
      page.limit = Number(value);
    } else if (name === "after" && page.after === undefined && value !== "") page.after = value;
    else return undefined;
  }
  return page;
}
