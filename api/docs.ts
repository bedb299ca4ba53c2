import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "text" };
import swaggerJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "text" };
import { etagMatches } from "./_etag.ts";
import { createRouter, noQueryParameters } from "./_router.ts";
import { noQuery } from "./_schemas.ts";

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scorestream API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// BaseLayout needs no standalone preset (its top bar loads other documents);
// validatorUrl null keeps Swagger UI from calling a validator on the internet.
const INIT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  defaultModelsExpandDepth: 0,
});
`;

// Everything the page loads comes from this service.
const DOCS_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

// What protects a page beyond its CSP; the API's JSON needs none of it.
const PAGE_HEADERS = {
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
};

/**
 * `/openapi.json`, built once from the routes' schemas, and `/docs`, Swagger UI
 * with its assets served from here so that it works with no internet.
 */
export function docsRoutes({ document }: { document: () => unknown }) {
  const asset = (type: string, body: () => string) => staticBody(type, body, { csp: DOCS_CSP });
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/openapi.json",
        tags: ["documentation"],
        request: { query: noQuery },
        summary: "This OpenAPI 3.1 document",
        responses: { 200: { description: "This document, as application/json." } },
      }),
      staticBody("application/json", () => JSON.stringify(document())),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/docs",
        tags: ["documentation"],
        request: { query: noQuery },
        summary: "Browsable API documentation",
        responses: {
          200: {
            description: "Swagger UI over /openapi.json.",
            content: { "text/html": { schema: z.string() } },
          },
        },
      }),
      asset("text/html; charset=utf-8", () => PAGE),
    )
    .get("/docs/init.js", noQueryParameters, asset("text/javascript; charset=utf-8", () => INIT))
    .get(
      "/docs/swagger-ui.css",
      noQueryParameters,
      asset("text/css; charset=utf-8", () => swaggerCss),
    )
    .get(
      "/docs/swagger-ui-bundle.js",
      noQueryParameters,
      asset("text/javascript; charset=utf-8", () => swaggerJs),
    );
}

/**
 * A handler for a body that never changes while the process runs: built on
 * first use, with a strong ETag, revalidated by clients after an hour.
 */
function staticBody(type: string, build: () => string, { csp }: { csp?: string } = {}) {
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
