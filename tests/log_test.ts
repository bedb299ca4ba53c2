import assert from "node:assert/strict";
import { createLogger } from "../log.ts";
import { until } from "./_wait.ts";

const at = new Date("2026-11-27T12:00:00.000Z");

function capture(options: { flushMs?: number; maxBufferChars?: number } = {}) {
  const writes: string[] = [];
  const logger = createLogger({
    write: (text) => writes.push(text),
    now: () => at.getTime(),
    ...options,
  });
  return { logger, writes };
}

Deno.test("createLogger() writes info records together after flushMs, in order, one JSON line each", async () => {
  const { logger, writes } = capture({ flushMs: 20 });
  logger.log({ level: "info", msg: "request", status: 200 });
  logger.log({ level: "info", msg: "request", status: 404 });
  assert.equal(writes.length, 0);
  await until("the flush", () => writes.length > 0, 2_000, 10);
  assert.equal(writes.length, 1);
  assert.deepEqual(writes[0].split("\n").slice(0, -1).map((line) => JSON.parse(line)), [
    { time: at.toISOString(), level: "info", msg: "request", status: 200 },
    { time: at.toISOString(), level: "info", msg: "request", status: 404 },
  ]);
  assert.ok(writes[0].endsWith("\n"));
});

Deno.test("createLogger() writes a warning or error at once, after what was buffered", () => {
  const { logger, writes } = capture({ flushMs: 60_000 });
  logger.log({ level: "info", msg: "first" });
  logger.log({ level: "error", msg: "second" });
  assert.equal(writes.length, 1);
  assert.deepEqual(writes[0].trim().split("\n").map((line) => JSON.parse(line).msg), [
    "first",
    "second",
  ]);
  logger.log({ level: "warn", msg: "third" });
  assert.equal(writes.length, 2);
});

Deno.test("createLogger() writes once the buffer holds maxBufferChars", () => {
  const { logger, writes } = capture({ flushMs: 60_000, maxBufferChars: 300 });
  for (let i = 0; i < 10; i++) logger.log({ level: "info", msg: `line ${i}` });
  assert.ok(writes.length >= 1 && writes.length < 10, `${writes.length} writes`);
  logger.flush();
  const lines = writes.join("").trim().split("\n").map((line) => JSON.parse(line).msg);
  assert.deepEqual(lines, Array.from({ length: 10 }, (_, i) => `line ${i}`));
});

Deno.test("createLogger() flush() writes what is buffered and nothing when empty", () => {
  const { logger, writes } = capture({ flushMs: 60_000 });
  logger.flush();
  assert.equal(writes.length, 0);
  logger.log({ level: "info", msg: "stopped" });
  logger.flush();
  logger.flush();
  assert.equal(writes.length, 1);
  assert.equal(JSON.parse(writes[0]).msg, "stopped");
});

Deno.test("createLogger() does not throw when writing fails", () => {
  const logger = createLogger({
    write: () => {
      throw new Deno.errors.BrokenPipe("stdout closed");
    },
  });
  logger.log({ level: "error", msg: "nowhere to go" });
  logger.log({ level: "info", msg: "still fine" });
  logger.flush();
});

Deno.test("createLogger() stamps each line with the time of its millisecond, first", () => {
  const writes: string[] = [];
  let clock = at.getTime();
  const logger = createLogger({ write: (text) => writes.push(text), now: () => clock });
  logger.log({ level: "info", msg: "a" });
  logger.log({ level: "info", msg: "b" });
  clock += 1;
  logger.log({ level: "info", msg: "c", nested: { quote: '"' } });
  logger.log({});
  logger.log({ level: "info", time: "its own" });
  logger.flush();
  const lines = writes.join("").trim().split("\n");
  assert.deepEqual(lines.map((line) => JSON.parse(line)), [
    { time: "2026-11-27T12:00:00.000Z", level: "info", msg: "a" },
    { time: "2026-11-27T12:00:00.000Z", level: "info", msg: "b" },
    { time: "2026-11-27T12:00:00.001Z", level: "info", msg: "c", nested: { quote: '"' } },
    { time: "2026-11-27T12:00:00.001Z" },
    { time: "its own", level: "info" },
  ]);
  assert.ok(lines.slice(0, 4).every((line) => line.startsWith('{"time":"2026-11-27T12:00:00.00')));
});
