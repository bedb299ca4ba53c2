import assert from "node:assert/strict";
import { createApi, type LogEntry } from "../../api/mod.ts";
import type { JsonText, Queries, StudentPage } from "../../db/mod.ts";
import { ReadError } from "../../db/mod.ts";

/**
 * Queries that answer the student list with `body` (once `answerAfter` resolves), or
 * fail with `error`.
 */
function fakeQueries(
  { body = '{"students":[],"next":null}', answerAfter, error }: {
    body?: string;
    answerAfter?: Promise<void>;
    error?: unknown;
  } = {},
): Queries {
  const students = async () => {
    if (answerAfter) await answerAfter;
    if (error) throw error;
    return body as JsonText<StudentPage>;
  };
  return new Proxy({} as Queries, {
    get: (_, name) => name === "students" ? students : () => Promise.reject(new Error("unused")),
  });
}

const ready = () => Promise.resolve(true);

Deno.test("every JSON response carries the headers that protect JSON, and pages those for pages", async () => {
  const app = createApi({ queries: fakeQueries(), ready });
  for (const path of ["/students", "/nope", "/students/%"]) {
    const res = await app.request(path);
    await res.body?.cancel();
    assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
    assert.equal(
      res.headers.get("content-security-policy"),
      "default-src 'none'; frame-ancestors 'none'",
      path,
    );
    assert.equal(res.headers.get("cross-origin-resource-policy"), "same-origin", path);
    assert.equal(res.headers.get("vary"), "Accept-Encoding", path);
    assert.equal(res.headers.get("x-powered-by"), null, path);
  }
  const page = await app.request("/docs");
  await page.body?.cancel();
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
  assert.match(page.headers.get("content-security-policy")!, /frame-ancestors 'none'/);
});

Deno.test("CORS is off unless an origin is configured", async () => {
  const closed = createApi({ queries: fakeQueries(), ready });
  const res = await closed.request("/students", { headers: { Origin: "https://example.org" } });
  await res.body?.cancel();
  assert.equal(res.headers.get("access-control-allow-origin"), null);

  const open = createApi({ queries: fakeQueries(), ready, corsOrigin: "https://example.org" });
  const allowed = await open.request("/students", { headers: { Origin: "https://example.org" } });
  await allowed.body?.cancel();
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://example.org");
  assert.match(allowed.headers.get("access-control-expose-headers")!, /ETag/);
  const preflight = await open.request("/students", {
    method: "OPTIONS",
    headers: { Origin: "https://example.org", "Access-Control-Request-Method": "GET" },
  });
  assert.equal(preflight.status, 204);
});

Deno.test("large bodies are gzip-compressed for clients that accept it, small ones are not", async () => {
  const students = Array.from({ length: 200 }, (_, i) => ({
    studentId: `Student_${i}`,
    count: 1,
    average: 0.5,
  }));
  const big = JSON.stringify({ students, next: null });
  const app = createApi({ queries: fakeQueries({ body: big }), ready });
  const res = await app.request("/students", { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.match(res.headers.get("vary")!, /Accept-Encoding/);
  const text = await new Response(res.body!.pipeThrough(new DecompressionStream("gzip"))).text();
  assert.equal(text, big);

  const small = createApi({ queries: fakeQueries(), ready });
  const plain = await small.request("/students", { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(plain.headers.get("content-encoding"), null);
  assert.equal(await plain.text(), '{"students":[],"next":null}');
});

Deno.test("a request id is made for each request, or kept from a well-formed X-Request-Id", async () => {
  const logs: LogEntry[] = [];
  const app = createApi({ queries: fakeQueries(), ready, log: (e) => logs.push(e) });
  const made = await app.request("/students");
  await made.body?.cancel();
  assert.match(made.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  const kept = await app.request("/students", { headers: { "X-Request-Id": "abc-123" } });
  await kept.body?.cancel();
  assert.equal(kept.headers.get("x-request-id"), "abc-123");
  const replaced = await app.request("/students", { headers: { "X-Request-Id": 'a b"<x>' } });
  await replaced.body?.cancel();
  assert.notEqual(replaced.headers.get("x-request-id"), 'a b"<x>');
  assert.deepEqual(logs.map((e) => e.requestId).slice(0, 2), [
    made.headers.get("x-request-id"),
    "abc-123",
  ]);
});

Deno.test("a request that runs past requestTimeoutMs answers 503 problem+json", async () => {
  // The query answers only after the request has timed out.
  const timedOut = Promise.withResolvers<void>();
  const queries = fakeQueries({ answerAfter: timedOut.promise });
  const app = createApi({ queries, ready, requestTimeoutMs: 20 });
  const res = await app.request("/students");
  timedOut.resolve();
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.equal((await res.json()).detail, "The request took too long");
});

Deno.test("a database timeout or outage answers 503 with Retry-After, not 500", async () => {
  for (const code of ["timeout", "unavailable"] as const) {
    const app = createApi({ queries: fakeQueries({ error: new ReadError(code) }), ready });
    const res = await app.request("/students");
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    await res.body?.cancel();
  }
});

Deno.test("an unexpected failure answers 500 problem+json that leaks nothing, and is logged", async () => {
  const logs: LogEntry[] = [];
  const error = new ReadError("failed", {
    cause: new Error('syntax error at or near "SELECT" in postgres'),
  });
  const app = createApi({ queries: fakeQueries({ error }), ready, log: (e) => logs.push(e) });
  const res = await app.request("/students");
  assert.equal(res.status, 500);
  const body = await res.text();
  assert.doesNotMatch(body, /syntax|SELECT|postgres|ReadError|at .*\.ts/);
  assert.equal(JSON.parse(body).requestId, res.headers.get("x-request-id"));
  const logged = logs.find((e) => e.msg === "request failed")!;
  assert.match(String(logged.cause), /syntax error/);
});

Deno.test("a URL longer than maxUrlLength answers 414", async () => {
  const app = createApi({ queries: fakeQueries(), ready, maxUrlLength: 100 });
  const res = await app.request(`/students?after=${"a".repeat(120)}`);
  assert.equal(res.status, 414);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  await res.body?.cancel();
});

Deno.test("HEAD answers like GET without a body; other methods on a known path answer 405 with Allow", async () => {
  const app = createApi({ queries: fakeQueries(), ready });
  const head = await app.request("/students", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  for (const path of ["/students", "/students/a", "/exams/1/top", "/healthz", "/docs/init.js"]) {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const res = await app.request(path, { method, body: method === "OPTIONS" ? null : "x" });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), "GET, HEAD", `${method} ${path}`);
      assert.equal(res.headers.get("content-type"), "application/problem+json");
      await res.body?.cancel();
    }
  }
  const unknown = await app.request("/nope", { method: "POST", body: "x" });
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
});

Deno.test("CORS_ORIGIN's comma-separated origins are each allowed, and no other", async () => {
  const app = createApi({ queries: fakeQueries(), ready, corsOrigin: "http://a, http://b" });
  for (const origin of ["http://a", "http://b", "http://c"]) {
    const res = await app.request("/students", { headers: { Origin: origin } });
    await res.body?.cancel();
    const allowed = origin === "http://c" ? null : origin;
    assert.equal(res.headers.get("access-control-allow-origin"), allowed, origin);
  }
  const preflight = await app.request("/students", {
    method: "OPTIONS",
    headers: { Origin: "http://b", "Access-Control-Request-Method": "GET" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "http://b");
});

Deno.test("a logger that throws does not fail the response", async () => {
  const app = createApi({
    queries: fakeQueries(),
    ready,
    log: () => {
      throw new Error("disk full");
    },
  });
  const res = await app.request("/students");
  assert.equal(res.status, 200);
  await res.body?.cancel();
});
