import { createRoute } from "@hono/zod-openapi";
import type { Queries } from "../db/mod.ts";
import { createRouter, jsonText, ok, problemResponse } from "./_router.ts";
import { pageQuery, quarantineCursor, QuarantinePage } from "./_schemas.ts";

/** `/quarantine`: the events ingest rejected. */
export function quarantineRoutes({ queries }: { queries: Queries }) {
  return createRouter().openapi(
    createRoute({
      method: "get",
      path: "/quarantine",
      tags: ["operations"],
      summary: "Rejected events",
      description: "The events that failed validation or were too large, newest first, " +
        "each with why, its SSE id, an excerpt of its data and when it was stored. " +
        "Counts by reason are in /stats.",
      request: { query: pageQuery(quarantineCursor, { defaultLimit: 100, maxLimit: 1000 }) },
      responses: {
        200: ok(QuarantinePage, "One page of rejected events."),
        400: problemResponse("A malformed parameter."),
      },
    }),
    async (c) => {
      const { after, limit } = c.req.valid("query");
      return jsonText(c, await queries.quarantine({ after, limit }));
    },
  );
}
