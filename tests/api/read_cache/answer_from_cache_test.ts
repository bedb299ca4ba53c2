import assert from "node:assert/strict";
import {
  type AnsweredRequest,
  answerFromCache,
} from "../../../api/read_cache/answer_from_cache.ts";
import { createChangeFeed } from "../../../api/read_cache/change_feed.ts";
import {
  createPageCache,
  type Dependency,
  type PageCache,
} from "../../../api/read_cache/page_cache.ts";
import { pageKey } from "../../../api/read_cache/page_key.ts";
import type { JsonText } from "../../../db/mod.ts";

function setup() {
  const changes = createChangeFeed();
  const cache = createPageCache({ maxBytes: 1 << 20, changes });
  const answered: AnsweredRequest[] = [];
  const answer = answerFromCache({
    cache,
    headers: { "X-Content-Type-Options": "nosniff" },
    onAnswered: (a) => answered.push(a),
  });
  store(cache, pageKey("student:a", { limit: 1 }), "student:a", '{"studentId":"a","count":1}', "7");
  return { changes, cache, answered, answer };
}

/** Caches `body` as read now, so that it is current. */
function store(
  cache: PageCache,
  key: string,
  dependency: Dependency,
  body: string,
  version: string,
) {
  cache.set(
    key,
    { body: body as JsonText<unknown>, version },
    dependency,
    cache.generation(dependency),
  );
}

const get = (path: string, headers: Record<string, string> = {}) =>
  new Request(`http://localhost${path}`, { headers });

Deno.test("answerFromCache() answers a GET of a current cached URL, and counts and reports it", async () => {
  const { cache, answered, answer } = setup();
  const res = answer(get("/students/a?limit=1"))!;
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"studentId":"a","count":1}');
  assert.equal(res.headers.get("ETag"), '"v1-7"');
  assert.equal(res.headers.get("Content-Type"), "application/json");
  assert.equal(res.headers.get("X-Content-Type-Options"), "nosniff");
  assert.equal(cache.answered.memory, 1);
  assert.deepEqual(
    answered.map((a) => ({ ...a, ms: 0, requestId: "" })),
    [{ route: "/students/{studentId}", path: "/students/a", status: 200, requestId: "", ms: 0 }],
  );
  const notModified = answer(get("/students/a?limit=1", { "If-None-Match": 'W/"v1-7"' }))!;
  assert.equal(notModified.status, 304);
});

Deno.test("answerFromCache() leaves to the router other methods, other URLs, compression and changed pages", () => {
  const { changes, answer } = setup();
  assert.equal(
    answer(new Request("http://localhost/students/a?limit=1", { method: "HEAD" })),
    undefined,
  );
  assert.equal(answer(get("/students/a")), undefined);
  assert.equal(answer(get("/students/a?limit=1", { "Accept-Encoding": "gzip" })), undefined);
  changes.publish({ students: ["a"], exams: [] });
  assert.equal(answer(get("/students/a?limit=1")), undefined);
});

Deno.test("answerFromCache() echoes a well-formed X-Request-Id and replaces any other", () => {
  const { answer } = setup();
  const echoed = answer(get("/students/a?limit=1", { "X-Request-Id": "abc-123" }))!;
  assert.equal(echoed.headers.get("X-Request-Id"), "abc-123");
  const replaced = answer(get("/students/a?limit=1", { "X-Request-Id": "a b\\c" }))!;
  assert.match(replaced.headers.get("X-Request-Id")!, /^[0-9a-f-]{36}$/);
});

Deno.test("answerFromCache() logs the path decoded, as the router does", () => {
  const { cache, answered, answer } = setup();
  store(cache, pageKey("student:a b", {}), "student:a b", "{}", "1");
  assert.equal(answer(get("/students/a%20b"))?.status, 200);
  assert.deepEqual(answered.map((a) => a.path), ["/students/a b"]);
});
