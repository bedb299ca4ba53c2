import assert from "node:assert/strict";
import fc from "fast-check";
import { databaseKinds } from "../_db.ts";
import { type ApiFixture, createApiFixture, seg } from "./_fixture.ts";

interface List {
  /** The path of the list, without query. */
  path: string;
  /** The field holding the items. */
  items: string;
  /** The largest page size the route accepts. */
  max: number;
}

const LISTS: List[] = [
  { path: "/students", items: "students", max: 1000 },
  { path: "/exams", items: "exams", max: 1000 },
  { path: "/students/Logan_Harber74", items: "results", max: 10000 },
  { path: "/exams/1559", items: "results", max: 10000 },
];

/** Follows `next` from the first page to the last, concatenating the items. */
async function walk(fx: ApiFixture, { path, items }: List, limit: number) {
  const all: unknown[] = [];
  let after: string | number | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const query: string = after === null ? "" : `&after=${seg(after)}`;
    const { status, body } = await fx.get(`${path}?limit=${limit}${query}`);
    assert.equal(status, 200);
    const page = body as Record<string, unknown> & { next: string | number | null };
    const chunk = page[items] as unknown[];
    assert.ok(chunk.length <= limit);
    all.push(...chunk);
    if (page.next === null) return all;
    assert.ok(chunk.length > 0, "a page with a next is never empty");
    after = page.next;
  }
  throw new Error(`${path} did not end`);
}

for (const kind of databaseKinds) {
  Deno.test(`concatenated pages equal the full list for any page size (${kind} database)`, async (t) => {
    await using fx = await createApiFixture(kind);
    for (const list of LISTS) {
      await t.step(`GET ${list.path}`, async () => {
        const full = (await fx.get(`${list.path}?limit=${list.max}`)).body as Record<
          string,
          unknown
        >;
        assert.equal(full.next, null);
        const expected = full[list.items] as unknown[];
        assert.ok(expected.length > 20, "the list is long enough to page through");
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 1, max: expected.length + 2 }), async (limit) => {
            assert.deepEqual(await walk(fx, list, limit), expected);
          }),
          { numRuns: 25 },
        );
      });
    }
  });
}
