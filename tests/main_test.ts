import assert from "node:assert/strict";
import { parseConfig } from "../main.ts";

Deno.test("parseConfig() runs on embedded defaults with no configuration at all", () => {
  const config = parseConfig([], {});
  assert.equal(config.scoresUrl, undefined);
  assert.equal(config.databaseUrl, undefined);
  assert.equal(config.dataDir, "./data");
  assert.equal(config.port, 8000);
  assert.equal(config.role, "all");
  assert.ok(config.writers >= 2);
});

Deno.test("parseConfig() reads the environment, and a flag overrides its variable", () => {
  const env = {
    SCORES_URL: "http://feed/scores",
    DATABASE_URL: "postgres://db/x",
    PORT: "9000",
    WRITERS: "3",
    ROLE: "api",
  };
  const config = parseConfig(["--port", "9001"], { ...env, DATA_DIR: "/tmp/d" });
  assert.equal(config.scoresUrl, "http://feed/scores");
  assert.equal(config.databaseUrl, "postgres://db/x");
  assert.equal(config.port, 9001);
  assert.equal(config.writers, 3);
  assert.equal(config.role, "api");
  assert.equal(config.dataDir, "/tmp/d");
});

Deno.test("parseConfig() treats an empty variable as unset", () => {
  assert.equal(parseConfig([], { DATABASE_URL: "" }).databaseUrl, undefined);
});

Deno.test("parseConfig() rejects malformed values, naming the setting", () => {
  assert.throws(() => parseConfig([], { PORT: "80x" }), /Cannot parse PORT "80x"/);
  assert.throws(() => parseConfig([], { WRITERS: "0" }), /Cannot parse WRITERS "0"/);
  assert.throws(() => parseConfig([], { ROLE: "ingest" }), /Cannot parse ROLE "ingest"/);
  assert.throws(() => parseConfig(["--nope"], {}), /nope/);
});

Deno.test("parseConfig() says that DATA_DIR is an environment variable only", () => {
  for (const args of [["--data-dir", "/tmp/d"], ["--data-dir=/tmp/d"]]) {
    assert.throws(() => parseConfig(args, {}), /DATA_DIR is an environment variable only/);
  }
});

Deno.test("parseConfig() rejects feed and database URLs that can never work, without their secrets", () => {
  assert.throws(
    () => parseConfig([], { SCORES_URL: "localhost:8001/scores" }),
    /^RangeError: Cannot use SCORES_URL .*: its scheme must be http or https/,
  );
  assert.throws(() => parseConfig([], { SCORES_URL: "ftp://feed/scores" }), /SCORES_URL/);
  assert.throws(() => parseConfig([], { SCORES_URL: "http://[x" }), /Cannot parse SCORES_URL/);
  for (const url of ["postgres://postgres:s3cr3t@[db/x", "http://postgres:s3cr3t@db/x"]) {
    assert.throws(
      () => parseConfig([], { DATABASE_URL: url }),
      (error: Error) => /DATABASE_URL/.test(error.message) && !error.message.includes("s3cr3t"),
    );
  }
});

Deno.test("parseConfig() keys the checkpoint by FEED_ID, by default the URL without credentials and query", () => {
  assert.equal(parseConfig([], {}).feedId, "builtin:demo");
  const url = "https://u:p@feed.example/scores?token=abc";
  assert.equal(parseConfig([], { SCORES_URL: url }).feedId, "https://feed.example/scores");
  assert.equal(parseConfig(["--feed-id", "scores"], { SCORES_URL: url }).feedId, "scores");
});

Deno.test("parseConfig() reads the fleet's settings: pool mode, lease and instance id", () => {
  const defaults = parseConfig([], {});
  assert.equal(defaults.poolMode, "session");
  assert.equal(defaults.leaseMs, 5_000);
  assert.match(defaults.instanceId, /.-[0-9a-f]{8}$/);
  assert.notEqual(parseConfig([], {}).instanceId, defaults.instanceId, "unique per start");
  const config = parseConfig([], {
    DATABASE_POOL_MODE: "transaction",
    LEASE_MS: "2000",
    INSTANCE_ID: "pod-1",
  });
  assert.equal(config.poolMode, "transaction");
  assert.equal(config.leaseMs, 2_000);
  assert.equal(config.instanceId, "pod-1");
  assert.equal(parseConfig([], { DATABASE_POOL_MODE: "transaction" }).leaseMs, 1_500);
  assert.throws(
    () => parseConfig([], { DATABASE_POOL_MODE: "statement" }),
    /Cannot parse DATABASE_POOL_MODE "statement": not one of session, transaction/,
  );
  assert.throws(() => parseConfig([], { LEASE_MS: "10" }), /Cannot parse LEASE_MS "10"/);
});
