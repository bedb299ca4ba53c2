import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createApi } from "../../api/mod.ts";
import type { Queries } from "../../db/mod.ts";

const app = createApi({ queries: {} as Queries, ready: () => Promise.resolve(true) });

const ROUTES = [
  "/students",
  "/students/{studentId}",
  "/students/{studentId}/trend",
  "/exams",
  "/exams/{exam}",
  "/exams/{exam}/histogram",
  "/exams/{exam}/top",
  "/exams/{exam}/students/{studentId}",
  "/quarantine",
  "/results",
  "/stats",
  "/healthz",
  "/readyz",
  "/metrics",
  "/openapi.json",
  "/docs",
  "/",
];

async function document() {
  const res = await app.request("/openapi.json");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  return await res.json();
}

Deno.test("GET /openapi.json is a valid OpenAPI 3.1 document", async () => {
  const doc = await document();
  assert.equal(doc.openapi, "3.1.0");
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.deepEqual(result, { valid: true });
  assert.equal(validator.version, "3.1");
});

Deno.test("GET /openapi.json lists every route the app serves, and no other", async () => {
  const doc = await document();
  assert.deepEqual(Object.keys(doc.paths).sort(), [...ROUTES].sort());
  const served = new Set(
    app.routes
      .filter((r) =>
        r.method === "GET" && !r.path.startsWith("/docs/") && !r.path.startsWith("/dashboard/")
      )
      .map((r) => r.path.replace(/:(\w+)/g, "{$1}")),
  );
  assert.deepEqual([...served].sort(), [...ROUTES].sort());
});

Deno.test("GET /openapi.json documents parameters, limits and problem responses", async () => {
  const doc = await document();
  const get = (path: string) => doc.paths[path].get;
  const param = (path: string, name: string) =>
    get(path).parameters.find((p: { name: string }) => p.name === name);
  assert.deepEqual(param("/exams/{exam}", "exam").schema, {
    type: "integer",
    minimum: 0,
    maximum: 2147483647,
    description: "An exam number.",
    example: 1559,
  });
  assert.equal(param("/students", "limit").schema.maximum, 1000);
  assert.equal(param("/students", "limit").schema.default, 100);
  assert.equal(param("/exams/{exam}", "limit").schema.maximum, 10000);
  assert.equal(param("/students/{studentId}", "studentId").schema.maxLength, 128);
  for (const path of ["/students/{studentId}", "/exams/{exam}", "/exams/{exam}/top"]) {
    assert.ok(get(path).responses["400"].content["application/problem+json"], path);
    assert.ok(get(path).responses["404"].content["application/problem+json"], path);
  }
  assert.ok(doc.components.schemas.Problem);
  assert.ok(doc.components.schemas.StudentResults);
});

Deno.test("GET /openapi.json is cacheable and revalidates with its ETag", async () => {
  const first = await app.request("/openapi.json");
  await first.body?.cancel();
  const etag = first.headers.get("etag")!;
  assert.match(first.headers.get("cache-control")!, /max-age/);
  const again = await app.request("/openapi.json", { headers: { "If-None-Match": etag } });
  assert.equal(again.status, 304);
});
