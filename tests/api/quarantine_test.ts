import assert from "node:assert/strict";
import { applyScores } from "../../db/mod.ts";
import { databaseKinds } from "../_db.ts";
import { createApiFixture } from "./_fixture.ts";

interface QuarantinePage {
  events: {
    id: string;
    receivedAt: string;
    eventId: string | null;
    reason: string;
    excerpt: string;
  }[];
  next: string | null;
}

for (const kind of databaseKinds) {
  Deno.test(`[${kind}] GET /quarantine lists rejected events newest first, page by page`, async () => {
    await using fx = await createApiFixture(kind, {}, [["a", 1, 0.5]]);
    const rejected = Array.from({ length: 25 }, (_, i) => ({
      eventId: i === 3 ? null : `id-${i}`,
      reason: i % 2 ? "not json" : "score out of range",
      raw: i === 7 ? "x".repeat(1024) : `{"bad": ${i}, "quote": "\\"", "emoji": "😀"}`,
    }));
    // In batches, as writers store them: the later batch is the newer.
    for (const batch of [rejected.slice(0, 10), rejected.slice(10)]) {
      await applyScores(fx.database.db, 0, { names: [], exams: [], scores: [] }, batch);
    }

    const seen: QuarantinePage["events"] = [];
    let after: string | null = null;
    do {
      const query: string = `/quarantine?limit=10${after === null ? "" : `&after=${after}`}`;
      const { status, body } = await fx.get(query);
      assert.equal(status, 200, query);
      const page = body as QuarantinePage;
      seen.push(...page.events);
      after = page.next;
    } while (after !== null);

    assert.deepEqual(
      seen.map(({ eventId, reason, excerpt }) => ({ eventId, reason, excerpt })),
      rejected.toReversed().map(({ eventId, reason, raw }) => ({
        eventId,
        reason,
        excerpt: raw.slice(0, 256),
      })),
    );
    const ids = seen.map((e) => BigInt(e.id));
    assert.deepEqual(ids, ids.toSorted((a, b) => (a > b ? -1 : 1)), "newest first");
    for (const event of seen) assert.ok(!Number.isNaN(Date.parse(event.receivedAt)));

    const bad = await fx.get("/quarantine?after=-1");
    assert.equal(bad.status, 400);
    const empty = await fx.get(`/quarantine?after=${seen.at(-1)!.id}`);
    assert.deepEqual(empty.body, { events: [], next: null });
  });
}
