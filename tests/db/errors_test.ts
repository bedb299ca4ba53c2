import assert from "node:assert/strict";
import {
  classifyError,
  connectionLost,
  errorMeaning,
  readErrorCode,
  shutDown,
} from "../../db/errors.ts";

const coded = (code: string, severity = "ERROR") =>
  Object.assign(new Error("x"), { code, severity });

Deno.test("errorMeaning() maps each SQLSTATE, postgres.js and system code to its meaning", () => {
  const expected: Record<string, string[]> = {
    fenced: ["SF001"],
    data: ["21000", "22001", "22021", "22P02", "23505", "54000"],
    permanent: ["28P01", "3D000", "3F000", "42601", "42501", "42P01", "0A000", "25006"],
    timeout: ["57014"],
    shutdown: ["57P01", "57P02", "57P03"],
    unavailable: ["53300", "53200", "57P04", "57P05"],
    connection: [
      "08000",
      "08001",
      "08006",
      "CONNECTION_CLOSED",
      "CONNECTION_ENDED",
      "CONNECTION_DESTROYED",
      "CONNECT_TIMEOUT",
      "ECONNREFUSED",
      "ECONNRESET",
      "ETIMEDOUT",
      "EPIPE",
    ],
    other: ["40001", "40P01", "25001", "XX000", "P0001", "ERR_INVALID_ARG", "UNDEFINED_VALUE"],
  };
  for (const [meaning, codes] of Object.entries(expected)) {
    for (const code of codes) assert.equal(errorMeaning(coded(code)), meaning, code);
  }
});

Deno.test("errorMeaning() reads errors without a code by their message", () => {
  assert.equal(errorMeaning(new Error("driver has already been destroyed")), "connection");
  assert.equal(errorMeaning(new Error("write CONNECTION_CLOSED")), "connection");
  assert.equal(errorMeaning(new Error("boom")), "other");
  assert.equal(errorMeaning("boom"), "other");
  assert.equal(errorMeaning(null), "other");
});

Deno.test("classifyError() keeps data and permanent failures apart from the transient rest", () => {
  assert.equal(classifyError(coded("22021")), "data");
  assert.equal(classifyError(coded("23505")), "data");
  assert.equal(classifyError(coded("42501")), "permanent");
  assert.equal(classifyError(coded("25006")), "permanent");
  assert.equal(classifyError(coded("SF001")), "fenced");
  for (const code of ["57014", "57P01", "53300", "08006", "ECONNRESET", "40001", "XX000"]) {
    assert.equal(classifyError(coded(code)), "transient", code);
  }
  assert.equal(classifyError(new Error("no code")), "transient");
  assert.equal(classifyError(undefined), "transient");
});

Deno.test("readErrorCode() maps Postgres and connection errors to timeout, unavailable or failed", () => {
  const code = (c: string) => readErrorCode(coded(c));
  assert.equal(code("57014"), "timeout");
  for (
    const c of ["08006", "08001", "53300", "57P01", "57P03", "ECONNREFUSED", "CONNECTION_CLOSED"]
  ) {
    assert.equal(code(c), "unavailable", c);
  }
  for (const c of ["42601", "22021", "XX000"]) assert.equal(code(c), "failed", c);
  assert.equal(readErrorCode(new Error("driver has already been destroyed")), "unavailable");
  assert.equal(readErrorCode(new Error("boom")), "failed");
  assert.equal(readErrorCode("boom"), "failed");
});

Deno.test("connectionLost() is true for connection failures and for any FATAL or PANIC", () => {
  for (const code of ["08006", "CONNECTION_ENDED", "CONNECT_TIMEOUT", "ECONNRESET", "EPIPE"]) {
    assert.equal(connectionLost(coded(code)), true, code);
  }
  assert.equal(connectionLost(coded("57P01", "FATAL")), true);
  assert.equal(connectionLost(coded("28P01", "FATAL")), true);
  assert.equal(connectionLost(coded("XX000", "PANIC")), true);
  for (const code of ["57014", "57P01", "23505", "40001", "53300"]) {
    assert.equal(connectionLost(coded(code)), false, code);
  }
});

Deno.test("shutDown() is true only for a FATAL admin, crash or startup shutdown", () => {
  for (const code of ["57P01", "57P02", "57P03"]) {
    assert.equal(shutDown(coded(code, "FATAL")), true);
  }
  assert.equal(shutDown(coded("57P01")), false);
  assert.equal(shutDown(coded("57P04", "FATAL")), false);
  assert.equal(shutDown(coded("08006", "FATAL")), false);
  assert.equal(shutDown(new Error("x")), false);
});
