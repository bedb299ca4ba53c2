import assert from "node:assert/strict";
import { databaseKinds } from "../_db.ts";
import { createApiFixture } from "./_fixture.ts";

/** Inputs an attacker or a broken client sends, already in URL form (some deliberately malformed). */
const HOSTILE = [
  "'%20OR%201=1--",
  "';DROP%20TABLE%20results;--",
  "1;SELECT%20pg_sleep(10)",
  "1%20UNION%20SELECT%20name%20FROM%20students",
  "%22%20OR%20%22%22=%22",
  "$1",
  "..",
  "../../etc/passwd",
  "..%2F..%2Fetc%2Fpasswd",
  "%2e%2e%2f%2e%2e%2f",
  "....//....//",
  "%00",
  "a%00b",
  "%0d%0aSet-Cookie:%20x=y",
  "%1b[31m",
  "%7f",
  "%c2%85",
  "%",
  "%%",
  "%2",
  "%zz",
  "%ff",
  "%c0%af",
  "%e0%80%80",
  "%ed%a0%80",
  "%f4%90%80%80",
  "%fe%ff",
  "%3Cscript%3Ealert(1)%3C/script%3E",
  "${jndi:ldap://x/a}",
  "{{7*7}}",
  "%25s%25s%25n",
  "-1",
  "-0",
  "1.5",
  "1e3",
  "1e308",
  "0x7fffffff",
  "2147483648",
  "4294967296",
  "9".repeat(40),
  "-9".repeat(20),
  "NaN",
  "Infinity",
  "%EF%BC%91", // fullwidth 1
  "%F0%9F%98%80".repeat(129),
  "x".repeat(129),
  "x".repeat(3000),
  "%E2%80%AE", // right-to-left override
  "%EF%BB%BF",
  "%20",
  "+",
  "null",
  "undefined",
  "[]",
  "{}",
  "true",
];

const TEMPLATES = [
  (x: string) => `/students/${x}`,
  (x: string) => `/students/${x}/trend`,
  (x: string) => `/exams/${x}`,
  (x: string) => `/exams/${x}/histogram`,
  (x: string) => `/exams/${x}/top`,
  (x: string) => `/exams/1559/students/${x}`,
  (x: string) => `/exams/${x}/students/a`,
  (x: string) => `/students?after=${x}`,
  (x: string) => `/students?limit=${x}`,
  (x: string) => `/exams?after=${x}&limit=${x}`,
  (x: string) => `/students/a?after=${x}`,
  (x: string) => `/exams/1559?after=${x}&limit=2`,
  (x: string) => `/exams/1/histogram?bins=${x}`,
  (x: string) => `/students/a/trend?last=${x}`,
  (x: string) => `/${x}`,
];

const LEAKS = [
  /postgres/i,
  /\bSQL\b/i,
  /syntax error/i,
  /relation "/i,
  /violates/i,
  /\bat .+:\d+:\d+/,
  /file:\/\//,
  /ReadError|TypeError|RangeError/,
  /stack/i,
];

for (const kind of databaseKinds) {
  Deno.test(`hostile requests get only 2xx or 4xx, problem+json errors, and no leaks (${kind} database)`, async () => {
    await using fx = await createApiFixture(kind);
    const methods = ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"];
    const requests: [string, RequestInit?][] = [];
    for (const template of TEMPLATES) {
      for (const x of HOSTILE) requests.push([template(x)]);
    }
    for (const method of methods) {
      for (const path of ["/students", "/exams/1", "/stats", "/students/a"]) {
        requests.push([path, { method, body: method === "TRACE" ? undefined : "'; DROP TABLE x" }]);
      }
    }
    requests.push(
      ["/students", { headers: { "If-None-Match": '"\'; DROP TABLE x"' } }],
      ["/students/a", { headers: { "If-None-Match": "*" } }],
      ["/exams/1", { headers: { "If-None-Match": 'W/"\u00ff"' } }],
      ["/students", { headers: { "X-Request-Id": "../../etc/passwd" } }],
      ["/students", { headers: { "Accept-Encoding": "gzip;q=abc, br, *;q=-1" } }],
    );
    assert.ok(requests.length >= 600, `${requests.length} requests`);

    let ok = 0;
    let clientErrors = 0;
    let refused = 0;
    for (const [path, init] of requests) {
      let res: Response;
      try {
        res = await fx.app.request(path, init);
      } catch (error) {
        // new Request() itself refuses some URLs; then nothing reached the API.
        assert.ok(error instanceof TypeError, `${path}: ${error}`);
        refused++;
        continue;
      }
      const body = await res.text();
      const where = `${init?.method ?? "GET"} ${path.slice(0, 120)} -> ${res.status} ${
        body.slice(0, 200)
      }`;
      assert.ok(res.status < 500, where);
      for (const leak of LEAKS) assert.doesNotMatch(body, leak, where);
      if (res.status >= 400) {
        clientErrors++;
        assert.equal(res.headers.get("content-type"), "application/problem+json", where);
        const problem = JSON.parse(body);
        assert.equal(problem.status, res.status, where);
        assert.equal(typeof problem.detail, "string", where);
      } else {
        ok++;
      }
    }
    assert.ok(
      clientErrors > 400 && ok > 0 && refused < 10,
      `${ok} ok, ${clientErrors} client errors, ${refused} refused by new Request()`,
    );
    // The database is still whole.
    const { body } = await fx.get("/students?limit=1000");
    assert.equal((body as { students: unknown[] }).students.length, fx.scores.size);
  });
}
