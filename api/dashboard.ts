import { createRoute, z } from "@hono/zod-openapi";
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import appJs from "./dashboard/app.js" with { type: "text" };
import page from "./dashboard/index.html" with { type: "text" };
import styleCss from "./dashboard/style.css" with { type: "text" };
import { createRouter, noQueryParameters } from "./_router.ts";
import { noQuery } from "./_schemas.ts";
import { staticBody } from "./_static_body.ts";

// Everything the page loads and reads comes from this service (uPlot sets
// inline styles on its elements).
const DASHBOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; " +
  "form-action 'none'";

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/** `/`, the dashboard for people, and its assets under `/dashboard/`, uPlot's among them. */
export function dashboardRoutes() {
  const asset = (type: string, body: string) =>
    staticBody(type, () => body, { csp: DASHBOARD_CSP });
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        tags: ["documentation"],
        request: { query: noQuery },
        summary: "The dashboard",
        description: "A page for people: the service's ingest, the exams with their " +
          "distributions, a search of students by studentId prefix, and the quarantine, " +
          "kept current from this API (live through /events where the service has it).",
        responses: {
          200: {
            description: "The dashboard's HTML; its scripts and styles are under /dashboard/.",
            content: { "text/html": { schema: z.string() } },
          },
        },
      }),
      asset("text/html; charset=utf-8", page),
    )
    .get("/dashboard/app.js", noQueryParameters, asset(JS, appJs))
    .get("/dashboard/style.css", noQueryParameters, asset(CSS, styleCss))
    .get("/dashboard/uPlot.iife.min.js", noQueryParameters, asset(JS, uplotJs))
    .get("/dashboard/uPlot.min.css", noQueryParameters, asset(CSS, uplotCss));
}
