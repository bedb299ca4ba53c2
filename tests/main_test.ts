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
  const config = parseConfig(["--port", "9001", "--data-dir=/tmp/d"], env);
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
