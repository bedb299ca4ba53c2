/**
 * Whether an If-None-Match header names `tag` or is `*`: the weak comparison
 * that RFC 9110 prescribes for If-None-Match, so `W/"x"` matches `"x"`.
 */
export function etagMatches(header: string, tag: string): boolean {
  return header.split(",").some((t) => {
    const candidate = t.trim();
    return candidate === "*" || candidate.replace(/^W\//, "") === tag;
  });
}
