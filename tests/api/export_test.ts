import assert from "node:assert/strict";
import { createApi, createChangeFeed, createReadCache } from "../../api/mod.ts";
import { createQueries, isMigrated } from "../../db/mod.ts";
import { databaseKinds } from "../_db.ts";
import { behindReadCache, createApiFixture, seg } from "./_fixture.ts";
import { compareUtf8 } from "../oracle.ts";

type Row = { studentId: string; exam: number; score: number };

/** RFC 4180 with a header line, as a spreadsheet reads it. */
function parseCsv(text: string): Row[] {
  const lines: string[][] = [];
  let field = "";
  let line: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"', i++);
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") (line.push(field), field = "");
    else if (ch === "\r" && text[i + 1] === "\n") {
      line.push(field), lines.push(line), field = "", line = [], i++;
    } else field += ch;
  }
  assert.equal(field + line.join(""), "", "ends with CRLF");
  assert.deepEqual(lines.shift(), ["studentId", "exam", "score"]);
  return lines.map(([studentId, exam, score]) => ({
    studentId,
    exam: Number(exam),
    score: Number(score),
  }));
}

const parseNdjson = (text: string): Row[] => {
  assert.ok(text === "" || text.endsWith("\n"));
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
};

for (const kind of databaseKinds) {
  Deno.test(`[${kind}] results export as CSV and NDJSON, all of them and by student and exam`, async () => {
    await using fx = await createApiFixture(kind);
    const all: Row[] = [...fx.scores]
      .flatMap(([studentId, exams]) =>
        [...exams].map(([exam, score]) => ({ studentId, exam, score }))
      )
      .sort((a, b) => compareUtf8(a.studentId, b.studentId) || a.exam - b.exam);
    const formats = [
      { accept: "text/csv", type: /^text\/csv; charset=utf-8/, parse: parseCsv },
      { accept: "application/x-ndjson", type: /^application\/x-ndjson/, parse: parseNdjson },
    ];
    const cases: [string, Row[]][] = [
      ["/results", all],
      [
        "/results?after=" + seg("Student_1:2001"),
        all.slice(all.findIndex((r) => r.studentId === "Student_1" && r.exam === 2001) + 1),
      ],
      ["/results?limit=7", all.slice(0, 7)],
      ["/students/Logan_Harber74", all.filter((r) => r.studentId === "Logan_Harber74")],
      [
        "/students/Logan_Harber74?after=120&limit=5",
        all.filter((r) => r.studentId === "Logan_Harber74" && r.exam > 120).slice(0, 5),
      ],
      [`/students/${seg('quote"s')}`, all.filter((r) => r.studentId === 'quote"s')],
      ["/exams/1559", all.filter((r) => r.exam === 1559)],
      [
        "/exams/1559?after=Student_5",
        all.filter((r) => r.exam === 1559 && compareUtf8(r.studentId, "Student_5") > 0),
      ],
    ];
    for (const { accept, type, parse } of formats) {
      for (const [path, expected] of cases) {
        const res = await fx.app.request(path, { headers: { Accept: accept } });
        assert.equal(res.status, 200, `${accept} ${path}`);
        assert.match(res.headers.get("content-type")!, type);
        assert.match(res.headers.get("vary")!, /(^|, )Accept(,|$)/);
        assert.deepEqual(parse(await res.text()), expected, `${accept} ${path}`);
      }
      const missing = await fx.app.request("/students/nobody", { headers: { Accept: accept } });
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    }
  });

  Deno.test(`[${kind}] GET /results pages through every result by key`, async () => {
    await using fx = await createApiFixture(kind);
    const expected = [...fx.scores]
      .flatMap(([studentId, exams]) =>
        [...exams].map(([exam, score]) => ({ studentId, exam, score }))
      )
      .sort((a, b) => compareUtf8(a.studentId, b.studentId) || a.exam - b.exam);
    const seen: Row[] = [];
    let after: string | null = null;
    do {
      const path: string = `/results?limit=37${after === null ? "" : `&after=${seg(after)}`}`;
      const { status, body } = await fx.get(path);
      assert.equal(status, 200, path);
      const page = body as { results: Row[]; next: string | null };
      seen.push(...page.results);
      after = page.next;
    } while (after !== null);
    assert.deepEqual(seen, expected);
    for (const bad of ["x", "a:", ":1", "a:1.5", "a:-1", "a:2147483648"]) {
      assert.equal((await fx.get(`/results?after=${seg(bad)}`)).status, 400, bad);
    }
  });

  Deno.test(`[${kind}] a cached JSON page is not the answer to a request for CSV`, async () => {
    await using fx = await createApiFixture(kind);
    const readCache = createReadCache({ changes: createChangeFeed() });
    const app = createApi({
      queries: createQueries(fx.database.db),
      ready: () => isMigrated(fx.database.db),
      readCache,
    });
    const request = behindReadCache(readCache, app);
    const json = await request("/students/a");
    assert.match(json.headers.get("content-type")!, /json/);
    await json.body?.cancel();
    const again = await request("/students/a");
    assert.match(again.headers.get("vary")!, /(^|, )Accept(,|$)/);
    await again.body?.cancel();
    const csv = await request("/students/a", { headers: { Accept: "text/csv" } });
    assert.match(csv.headers.get("content-type")!, /^text\/csv/);
    assert.equal(parseCsv(await csv.text()).length, fx.scores.get("a")!.size);
  });
}
