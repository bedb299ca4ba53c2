import assert from "node:assert/strict";
import { feedIdentity, redactUrl } from "../../ingest/mod.ts";

Deno.test("feedIdentity() drops credentials, query and fragment, and nothing else", () => {
  assert.equal(
    feedIdentity("http://user:pass@feed.example:8001/scores?token=a#x"),
    "http://feed.example:8001/scores",
  );
  assert.equal(feedIdentity("https://feed.example/scores?token=b"), "https://feed.example/scores");
  assert.equal(feedIdentity("https://Feed.example/a/b"), "https://Feed.example/a/b");
  assert.equal(feedIdentity("builtin:demo"), "builtin:demo");
});

Deno.test("redactUrl() hides the password and every query value, keeps the rest", () => {
  assert.equal(
    redactUrl("http://user:s3cr3t@feed.example/scores?token=t0ken&x=1"),
    "http://user:***@feed.example/scores?token=***&x=***",
  );
  assert.equal(
    redactUrl("postgres://postgres@db:5432/scores"),
    "postgres://postgres@db:5432/scores",
  );
  assert.equal(redactUrl("postgres://postgres:s3cr3t@[db/x"), "(not a URL)");
});
