import assert from "node:assert/strict";
import { sql } from "kysely";
import postgres from "postgres";
import {
  applyScores,
  createLeaderLease,
  type LeaderLease,
  loadCheckpoint,
  saveCheckpoint,
  TransactionPoolerError,
} from "../../db/mod.ts";
import { errorMeaning } from "../../db/errors.ts";
import { createTestDatabase, databaseKinds, untilAStatementWaitsForALock } from "../_db.ts";
import { startPgbouncer } from "../_pgbouncer.ts";
import { until } from "../_wait.ts";

const FEED = "http://feed.test/scores";

function leases(url: string, leaseMs: number, poolMode?: "session" | "transaction") {
  const all: LeaderLease[] = [];
  const create = (instance: string) => {
    const lease = createLeaderLease({ url, feed: FEED, instance, leaseMs, poolMode });
    all.push(lease);
    return lease;
  };
  return {
    create,
    async [Symbol.asyncDispose]() {
      await Promise.all(all.map((l) => l.close()));
    },
  };
}

if (databaseKinds.includes("server")) {
  Deno.test("a lease is held by one instance; renewal keeps it; release hands it over at once", async () => {
    await using t = await createTestDatabase("server");
    await using l = leases(t.url, 60_000);
    const a = l.create("a");
    const b = l.create("b");
    const first = await a.tryAcquire();
    assert.equal(first.term?.epoch, 1);
    assert.equal(first.leader?.instance, "a");
    const refused = await b.tryAcquire();
    assert.equal(refused.term, undefined);
    assert.equal(refused.leader?.instance, "a");
    assert.equal(refused.leader?.epoch, 1);
    assert.equal(await a.renew(first.term!), true);
    assert.equal((await b.tryAcquire()).term, undefined, "a renewed lease stays");

    await a.release(first.term!);
    const second = await b.tryAcquire();
    assert.equal(second.term?.epoch, 2, "the epoch grows with every new term");
    assert.equal(await a.renew(first.term!), false, "an old term cannot be renewed");
    assert.deepEqual((await a.current())?.instance, "b");
  });

  Deno.test("a standby takes over before expiry only once the holder's session and lock are gone", async () => {
    await using t = await createTestDatabase("server");
    await using l = leases(t.url, 60_000);
    const a = l.create("a");
    const b = l.create("b");
    const term = (await a.tryAcquire()).term!;
    for (let i = 0; i < 3; i++) assert.equal((await b.tryAcquire()).term, undefined);
    // A dead process's session ends, and its lock with it.
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'scorestream-leader' AND pid IN (
          SELECT pid FROM pg_locks WHERE locktype = 'advisory')`.execute(t.db);
    await until("the term to be lost", () => term.lost.aborted);
    const taken = await until("b to take over", async () => (await b.tryAcquire()).term);
    assert.equal(taken.epoch, 2);
    assert.equal(await a.renew(term), false);
  });

  Deno.test("an expired lease is taken over even while its holder keeps the lock", async () => {
    await using t = await createTestDatabase("server");
    await using l = leases(t.url, 300);
    const a = l.create("a");
    const b = l.create("b");
    const old = (await a.tryAcquire()).term!;
    const taken = await until("the lease to expire", async () => (await b.tryAcquire()).term);
    assert.equal(taken.epoch, 2);
    assert.equal(old.lost.aborted, false, "a holder that is only paused does not notice");
    assert.equal(await a.renew(old), false, "until it renews");
    await a.release(old);
    assert.equal(await b.renew(taken), true);
    const row = await sql<{ locked: boolean }>`SELECT locked FROM ingest_leader`.execute(t.db);
    assert.equal(row.rows[0].locked, true, "the new holder took the freed lock on renewal");
  });

  Deno.test("a renewal and a standby's poll do not wait for transactions that passed the fence; a takeover does", async () => {
    await using t = await createTestDatabase("server");
    await using l = leases(t.url, 500);
    const a = l.create("a");
    const term = (await a.tryAcquire()).term!;
    const writer = postgres(t.url, { max: 1, onnotice: () => {} });
    const fenced = Promise.withResolvers<void>();
    const commit = Promise.withResolvers<void>();
    const transaction = writer.begin(async (tx) => {
      await tx`SELECT ingest_fence(${FEED}, ${term.epoch})`;
      fenced.resolve();
      await commit.promise;
    });
    try {
      await fenced.promise;
      // Renewed while the fenced transaction is open (a busy writer always has one).
      const renewed = await Promise.race([
        a.renew(term),
        new Promise((resolve) => setTimeout(() => resolve("still waiting after 5 s"), 5_000)),
      ]);
      assert.equal(renewed, true);
      // A standby's poll of a live lease reads the row without waiting either.
      const b = l.create("b");
      const polled = await Promise.race([
        b.tryAcquire(),
        new Promise<string>((resolve) =>
          setTimeout(() => resolve("still waiting after 5 s"), 5_000)
        ),
      ]);
      assert.deepEqual(
        typeof polled === "string"
          ? polled
          : { term: polled.term, holder: polled.leader?.instance },
        { term: undefined, holder: "a" },
      );

      await new Promise((resolve) => setTimeout(resolve, 600));
      let takenOver = false;
      const takeover = b.tryAcquire().then((acquired) => (takenOver = true, acquired));
      await untilAStatementWaitsForALock(t, "the takeover waiting for the fenced transaction");
      assert.equal(takenOver, false);
      commit.resolve();
      await transaction;
      assert.equal((await takeover).term?.epoch, term.epoch + 1);
    } finally {
      commit.resolve();
      await transaction.catch(() => {});
      await writer.end();
    }
  });

  Deno.test("Postgres refuses results, quarantine and checkpoints of a stale epoch (SF001)", async () => {
    await using t = await createTestDatabase("server");
    await using l = leases(t.url, 60_000);
    const a = l.create("a");
    const old = (await a.tryAcquire()).term!;
    const fence = { feed: FEED, epoch: old.epoch };
    await applyScores(t.db, 0, { names: ["x"], exams: [1], scores: [0.5] }, [], undefined, {
      fence,
    });
    await saveCheckpoint(t.db, FEED, "1", fence);
    await a.release(old);
    const b = l.create("b");
    const current = (await b.tryAcquire()).term!;

    const refusals = [
      applyScores(t.db, 0, { names: ["x"], exams: [1], scores: [0.9] }, [], undefined, { fence }),
      applyScores(
        t.db,
        1,
        { names: [], exams: [], scores: [] },
        [
          { eventId: "2", reason: "invalid_json", raw: "{" },
        ],
        undefined,
        { fence },
      ),
      saveCheckpoint(t.db, FEED, "2", fence),
    ].map((refused) => refused.then(() => undefined, (e) => e));
    for (const refused of refusals) {
      const error = await refused;
      assert.equal(error?.code, "SF001");
      assert.equal(errorMeaning(error), "fenced");
    }
    const scores = await sql<{ score: number }>`SELECT score FROM results`.execute(t.db);
    assert.deepEqual(scores.rows, [{ score: 0.5 }]);
    const quarantined = await sql<{ n: number }>`SELECT count(*)::int AS n FROM quarantine`
      .execute(t.db);
    assert.equal(quarantined.rows[0].n, 0);
    assert.equal(await loadCheckpoint(t.db, FEED), "1");

    await saveCheckpoint(t.db, FEED, "2", { feed: FEED, epoch: current.epoch });
    assert.equal(await loadCheckpoint(t.db, FEED), "2", "the current epoch commits");
  });

  Deno.test("through pgbouncer in transaction mode the lock is refused by name; leases alone work", async () => {
    await using t = await createTestDatabase("server");
    await using bouncer = await startPgbouncer(t.url);
    await using l = leases(bouncer.url, 400, "session");
    await using tl = leases(bouncer.url, 400, "transaction");
    const error = await l.create("a").tryAcquire().then(() => undefined, (e) => e);
    assert.ok(error instanceof TransactionPoolerError, String(error));
    assert.match(error.message, /DATABASE_POOL_MODE=transaction/);

    const a = tl.create("a");
    const b = tl.create("b");
    const term = (await a.tryAcquire()).term!;
    assert.equal(term.epoch, 1);
    assert.equal((await b.tryAcquire()).term, undefined);
    assert.equal(await a.renew(term), true);
    const taken = await until("the lease to expire", async () => (await b.tryAcquire()).term);
    assert.equal(taken.epoch, 2);
    assert.equal(await a.renew(term), false);
  });
}
