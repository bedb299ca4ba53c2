import { createRoute, z } from "@hono/zod-openapi";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "text" };
import swaggerJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "text" };
import { createRouter, noQueryParameters } from "./_router.ts";
import { staticBody } from "./_static_body.ts";
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
