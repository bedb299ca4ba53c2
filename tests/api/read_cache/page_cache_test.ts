import assert from "node:assert/strict";
import { createChangeFeed } from "../../../api/read_cache/change_feed.ts";
import { createPageCache } from "../../../api/read_cache/page_cache.ts";
import type { JsonText, Versioned } from "../../../db/mod.ts";

const entry = (body: string, version = "1"): Versioned<unknown> => ({
  body: body as JsonText<unknown>,
  version,
});
const D = "student:a";

Deno.test("createPageCache() keeps entries up to its size and drops the least recently used", () => {
  const cache = createPageCache({ maxBytes: 25 });
  cache.set("/a", entry("x".repeat(8)), D, 0);
  cache.set("/b", entry("y".repeat(8)), D, 0);
  assert.equal(cache.get("/a", D)?.value.body, "x".repeat(8));
  cache.set("/c", entry("z".repeat(8)), D, 0);
  assert.equal(cache.get("/b", D), undefined, "/b was the least recently used");
  assert.ok(cache.get("/a", D));
  assert.ok(cache.get("/c", D));
});

Deno.test("createPageCache() replaces an entry in place and never keeps one larger than its size", () => {
  const cache = createPageCache({ maxBytes: 20 });
  cache.set("/a", entry("old", "1"), D, 0);
  cache.set("/a", entry("new", "2"), D, 0);
  assert.deepEqual(cache.get("/a", D)?.value, entry("new", "2"));
  cache.set("/big", entry("b".repeat(50)), D, 0);
  assert.equal(cache.get("/big", D), undefined);
  assert.ok(cache.get("/a", D));
  const off = createPageCache({ maxBytes: 0 });
  off.set("/a", entry("x"), D, 0);
  assert.equal(off.get("/a", D), undefined);
});

Deno.test("createPageCache() counts two bytes a character for a body that V8 cannot keep in one", () => {
  // "/a" + 8 one-byte characters: 10 bytes; "/b" + 8 characters with a U+00E9: still 10;
  // "/c" + 8 characters with a U+0101: 2 + 16 = 18, which does not fit beside both.
  const cache = createPageCache({ maxBytes: 30 });
  cache.set("/a", entry("x".repeat(8)), D, 0);
  cache.set("/b", entry("\u00e9".repeat(8)), D, 0);
  cache.set("/c", entry("\u0101" + "z".repeat(7)), D, 0);
  assert.equal(cache.get("/a", D), undefined, "/a was evicted to make room for 18 bytes");
  assert.ok(cache.get("/b", D));
  assert.ok(cache.get("/c", D));
  cache.set("/d", entry("\u0101".repeat(15)), D, 0);
  assert.equal(cache.get("/d", D), undefined, "2 + 30 bytes never fit in 30");
});

Deno.test("createPageCache() trusts an entry only with a change feed and until its dependency changes", () => {
  const changes = createChangeFeed();
  const cache = createPageCache({ maxBytes: 100, changes });
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  cache.set("/exams/1", entry("y"), "exam:1", cache.generation("exam:1"));
  assert.equal(cache.get("/students/a", "student:a")?.current, true);
  changes.publish({ students: ["b"], exams: [1] });
  assert.equal(cache.get("/students/a", "student:a")?.current, true);
  assert.equal(cache.get("/exams/1", "exam:1")?.current, false);
  changes.publish({ students: ["a"], exams: [] });
  assert.equal(cache.get("/students/a", "student:a")?.current, false);

  const unfed = createPageCache({ maxBytes: 100 });
  unfed.set("/students/a", entry("x"), "student:a", unfed.generation("student:a"));
  assert.equal(unfed.get("/students/a", "student:a")?.current, false);
});

Deno.test("createPageCache() does not trust a body read while its dependency changed", () => {
  const changes = createChangeFeed();
  const cache = createPageCache({ maxBytes: 100, changes, maxTrackedChars: 2 });
  const before = cache.generation("student:a");
  changes.publish({ students: ["a"], exams: [] });
  cache.set("/students/a", entry("x"), "student:a", before);
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
  // Past maxTrackedChars every dependency counts as changed, a's too.
  const again = cache.generation("student:a");
  changes.publish({ students: ["b", "c"], exams: [] });
  cache.set("/students/a", entry("x"), "student:a", again);
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  assert.equal(cache.get("/students/a", "student:a")?.current, true);
});

Deno.test("createPageCache() stops trusting every entry when everything may have changed", () => {
  const changes = createChangeFeed();
  const cache = createPageCache({ maxBytes: 100, changes });
  const before = cache.generation("exam:1");
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  changes.publish("everything");
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
  // A body read before the change is not trusted either.
  cache.set("/exams/1", entry("y"), "exam:1", before);
  assert.equal(cache.get("/exams/1", "exam:1")?.current, false);
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  assert.equal(cache.get("/students/a", "student:a")?.current, true);
});

Deno.test("createPageCache() trusts nothing while its change feed is not live", () => {
  const changes = createChangeFeed({ live: false });
  const cache = createPageCache({ maxBytes: 100, changes });
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
  // Read while changes went unreported: not trusted once live either.
  changes.setLive(true);
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  assert.equal(cache.get("/students/a", "student:a")?.current, true);
  changes.setLive(false);
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
});

Deno.test("createPageCache() bounds the changes it tracks by characters, not by entries", () => {
  const changes = createChangeFeed();
  const cache = createPageCache({ maxBytes: 10_000, changes, maxTrackedChars: 1_000 });
  cache.set("/students/a", entry("x"), "student:a", cache.generation("student:a"));
  // Three short ids are tracked, and a's entry stays current.
  changes.publish({ students: ["b", "c", "d"], exams: [] });
  assert.equal(cache.get("/students/a", "student:a")?.current, true);
  // Two 500-character ids are only two entries, but past 1,000 characters: all count as changed.
  changes.publish({ students: ["e".repeat(500), "f".repeat(500)], exams: [] });
  assert.equal(cache.get("/students/a", "student:a")?.current, false);
  // The same id again adds no characters.
  const cache2 = createPageCache({ maxBytes: 10_000, changes, maxTrackedChars: 1_000 });
  cache2.set("/students/a", entry("x"), "student:a", cache2.generation("student:a"));
  for (let i = 0; i < 10; i++) changes.publish({ students: ["g".repeat(400)], exams: [] });
  assert.equal(cache2.get("/students/a", "student:a")?.current, true);
});
