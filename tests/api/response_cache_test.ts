import assert from "node:assert/strict";
import { createResponseCache } from "../../api/response_cache.ts";
import type { JsonText, Versioned } from "../../db/mod.ts";

const entry = (body: string, version = "1"): Versioned<unknown> => ({
  body: body as JsonText<unknown>,
  version,
});

Deno.test("createResponseCache() keeps entries up to its size and drops the least recently used", () => {
  const cache = createResponseCache(25);
  cache.set("/a", entry("x".repeat(8)));
  cache.set("/b", entry("y".repeat(8)));
  assert.equal(cache.get("/a")?.body, "x".repeat(8));
  cache.set("/c", entry("z".repeat(8)));
  assert.equal(cache.get("/b"), undefined, "/b was the least recently used");
  assert.ok(cache.get("/a"));
  assert.ok(cache.get("/c"));
});

Deno.test("createResponseCache() replaces an entry in place and never keeps one larger than its size", () => {
  const cache = createResponseCache(20);
  cache.set("/a", entry("old", "1"));
  cache.set("/a", entry("new", "2"));
  assert.deepEqual(cache.get("/a"), entry("new", "2"));
  cache.set("/big", entry("b".repeat(50)));
  assert.equal(cache.get("/big"), undefined);
  assert.ok(cache.get("/a"));
  const off = createResponseCache(0);
  off.set("/a", entry("x"));
  assert.equal(off.get("/a"), undefined);
});
