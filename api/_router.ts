import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler, TypedResponse } from "hono";
import { HTTPException } from "hono/http-exception";
import type { RequestIdVariables } from "hono/request-id";
import type { JSONParsed } from "hono/utils/types";
import type { JsonText } from "../db/mod.ts";
import { Problem } from "./_schemas.ts";

export type ApiEnv = { Variables: RequestIdVariables };

const TARGETS: Record<string, string> = { param: "path parameter", query: "query parameter" };

/**
 * An OpenAPIHono whose validation failures become 400 problems: every router
 * of the API is made here, since the hook does not carry over `app.route()`.
 */
export function createRouter(): OpenAPIHono<ApiEnv> {
  return new OpenAPIHono<ApiEnv>({
    defaultHook(result) {
      if (result.success) return;
      const [issue] = result.error.issues;
      if (issue.code === "unrecognized_keys") {
        throw new HTTPException(400, { message: unknownParameter(issue.keys[0]) });
      }
      const where = TARGETS[result.target] ?? result.target;
      throw new HTTPException(400, {
        message: `Invalid ${where} "${issue.path.join(".")}": ${issue.message}`,
      });
    },
  });
}

/** The detail of a 400 for a query parameter the route does not take. */
export const unknownParameter = (name: string) =>
  `Unknown query parameter ${JSON.stringify(name.slice(0, 64))}`;

/**
 * Refuses every query parameter, for the few routes outside OpenAPI (the
 * documented ones refuse what their `request.query` does not name).
 */
export const noQueryParameters: MiddlewareHandler = async function noQueryParameters(c, next) {
  const [name] = Object.keys(c.req.queries());
  if (name !== undefined) throw new HTTPException(400, { message: unknownParameter(name) });
  await next();
};

const encoder = new TextEncoder();

/** compress()'s default: bodies smaller than this are sent as they are. */
const COMPRESS_THRESHOLD = 1024;

/**
 * Sends JSON text built by the database as it is, typed as the `T` it holds.
 * The text goes to Deno.serve as a string: encoding it here and handing over
 * bytes, which Response copies, cost ~8 µs of a ~30 µs request for 2 KiB.
 */
export function jsonText<T>(
  c: Context,
  body: JsonText<T>,
  headers: Record<string, string> = {},
): TypedResponse<JSONParsed<T>, 200, "json"> {
  return c.body(body, 200, { ...jsonBodyHeaders(body), ...headers }) as unknown as TypedResponse<
    JSONParsed<T>,
    200,
    "json"
  >;
}

/** The headers describing a JSON body. */
export function jsonBodyHeaders(body: string): Record<string, string> {
  // compress() leaves a body alone only when it knows it is small; a larger
  // one (at least as many bytes as UTF-16 units) is sized by Deno.serve.
  return body.length < COMPRESS_THRESHOLD
    ? { "Content-Type": "application/json", "Content-Length": String(encoder.encode(body).length) }
    : { "Content-Type": "application/json" };
}

/** The OpenAPI description of a 200 JSON body. */
export function ok<S extends z.ZodType>(schema: S, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/**
 * The OpenAPI description of a 200 list of results, which Accept can also ask
 * for as CSV or NDJSON.
 */
export function okOrExport<S extends z.ZodType>(schema: S, description: string) {
  return {
    description,
    content: {
      "application/json": { schema },
      "text/csv": {
        schema: z.string().openapi({
          description: "With `Accept: text/csv`: every result the parameters select, " +
            "streamed: a `studentId,exam,score` header, then one line each (RFC 4180). " +
            "`limit` caps the rows only when given.",
          example: "studentId,exam,score\r\nLogan_Harber74,1559,0.81\r\n",
        }),
      },
      "application/x-ndjson": {
        schema: z.string().openapi({
          description: "With `Accept: application/x-ndjson`: the same, one JSON object " +
            "`{studentId, exam, score}` a line.",
          example: '{"studentId":"Logan_Harber74","exam":1559,"score":0.81}\n',
        }),
      },
    },
  };
}

/** The `Vary` of a list of results: its representation follows Accept. */
export const VARY_EXPORT = "Accept, Accept-Encoding";

/** The OpenAPI description of a problem response. */
export function problemResponse(description: string) {
  return { description, content: { "application/problem+json": { schema: Problem } } };
}
