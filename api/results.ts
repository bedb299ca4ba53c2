import { createRoute } from "@hono/zod-openapi";
import type { Queries, Result } from "../db/mod.ts";
import { exportFormat, exportResults } from "./_export.ts";
import { createRouter, okOrExport, problemResponse, VARY_EXPORT } from "./_router.ts";
import { PAGE_LIMIT, pageQuery, resultCursor, ResultPage } from "./_schemas.ts";

/** `/results`: every stored result, by page or as one stream. */
export function resultRoutes({ queries }: { queries: Queries }) {
  return createRouter().openapi(
    createRoute({
      method: "get",
      path: "/results",
      tags: ["students"],
      summary: "All results",
      description: "Every stored result, by studentId in UTF-8 byte order then by exam, " +
        "one page at a time; or with `Accept: text/csv` or `application/x-ndjson` all of " +
        "them after `after`, streamed. Pages are read by key, so the cost of one does " +
        "not grow with how far into the list it is.",
      request: { query: pageQuery(resultCursor, { defaultLimit: PAGE_LIMIT, maxLimit: 10000 }) },
      responses: {
        200: okOrExport(ResultPage, "One page of results."),
        400: problemResponse("A malformed parameter."),
      },
    }),
    async (c) => {
      const { after, limit } = c.req.valid("query");
      c.header("Vary", VARY_EXPORT);
      const read = (last: Result | undefined, n: number) =>
        queries.results({ of: "all", after: last ?? after }, n);
      const format = exportFormat(c);
      if (format) return exportResults(c, format, { read, limit });
      const rows = await read(undefined, limit + 1);
      const page = rows.slice(0, limit);
      const last = rows.length > limit ? page.at(-1)! : undefined;
      return c.json({
        results: page,
        next: last ? `${last.studentId}:${last.exam}` : null,
      }, 200);
    },
  );
}
