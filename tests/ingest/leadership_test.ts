import assert from "node:assert/strict";
import { sql } from "kysely";
import { createLeaderLease, type Term } from "../../db/mod.ts";
import { type LeadershipStatus, runLeadership } from "../../ingest/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";
import { until } from "../_wait.ts";

const FEED = "http://feed.test/scores";

/** An instance's leadership loop with a real lease; `lead` records its terms. */
function candidate(url: string, instance: string, leaseMs: number) {
  const lease = createLeaderLease({ url, feed: FEED, instance, leaseMs });
  const stop = new AbortController();
  const terms: { epoch: number; ended: boolean; why?: string }[] = [];
  const statuses: LeadershipStatus[] = [];
  const running = runLeadership({
    lease,
    leaseMs,
    pollMs: 50,
    signal: stop.signal,
    lead: async (term: Term) => {
      const record: { epoch: number; ended: boolean; why?: string } = {
        epoch: term.epoch,
        ended: false,
      };
      terms.push(record);
      await new Promise((resolve) => term.lost.addEventListener("abort", resolve, { once: true }));
      record.why = String(term.lost.reason?.message ?? term.lost.reason);
      record.ended = true;
    },
    onStatus: (status) => statuses.push(status),
    log: () => {},
  });
  return {
    terms,
    statuses,
    leading: () => terms.some((t) => !t.ended),
    async stop() {
      stop.abort();
      await running;
      await lease.close();
    },
  };
}

if (databaseKinds.includes("server")) {
  Deno.test("runLeadership() lets one candidate lead; stopping it hands over to the other at once", async () => {
    await using t = await createTestDatabase("server");
    const a = candidate(t.url, "a", 60_000);
    await until("a to lead", () => a.leading());
    const b = candidate(t.url, "b", 60_000);
    try {
      await until("b to see a lead", () => b.statuses.at(-1)?.leader?.instance === "a");
      assert.equal(b.leading(), false);
      assert.equal(b.statuses.at(-1)?.role, "standby");
      await a.stop();
      // A 60 s lease: only the release lets b lead this soon.
      await until("b to lead", () => b.leading(), 5_000);
      assert.deepEqual(a.terms.map((x) => x.epoch), [1]);
      assert.deepEqual(b.terms.map((x) => x.epoch), [2]);
      assert.equal(b.statuses.at(-1)?.role, "leader");
    } finally {
      await b.stop();
    }
  });

  Deno.test("runLeadership() deposes a leader whose epoch was taken, which then stands by", async () => {
    await using t = await createTestDatabase("server");
    const a = candidate(t.url, "a", 1_000);
    try {
      await until("a to lead", () => a.leading());
      // Another instance took over: the row has a newer epoch and a live lease.
      await sql`UPDATE ingest_leader SET epoch = epoch + 1, holder = 'z', locked = false,
        expires_at = now() + interval '1 hour'`.execute(t.db);
      await until("a's term to end", () => a.terms[0]?.ended);
      assert.match(a.terms[0].why!, /another instance took over/);
      await until("a to report standing by", () => a.statuses.at(-1)?.role === "standby");
      assert.equal(a.statuses.at(-1)?.leader?.instance, "z");
      assert.equal(a.leading(), false);
    } finally {
      await a.stop();
    }
  });

  Deno.test("runLeadership() ends the term when the lock's session is gone; a standby takes over", async () => {
    await using t = await createTestDatabase("server");
    const a = candidate(t.url, "a", 60_000);
    await until("a to lead", () => a.leading());
    const b = candidate(t.url, "b", 60_000);
    try {
      await until("b to stand by", () => b.statuses.at(-1)?.role === "standby");
      await sql`SELECT pg_terminate_backend(l.pid) FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted`.execute(t.db);
      await until("a's term to end", () => a.terms[0]?.ended);
      assert.match(a.terms[0].why!, /lock's connection closed/);
      await until("someone to lead again", () => a.leading() || b.leading(), 5_000);
      const epochs = [...a.terms, ...b.terms].map((x) => x.epoch).sort();
      assert.deepEqual(epochs, [1, 2]);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
}
