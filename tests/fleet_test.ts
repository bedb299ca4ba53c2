// Several instances on one database and one live feed: the leader killed, stopped
// (rolling deploy), paused and cut off, directly and through pgbouncer.
import assert from "node:assert/strict";
import { createTestDatabase } from "./_db.ts";
import { fleetScenario } from "./_fleet.ts";
import { startPgbouncer } from "./_pgbouncer.ts";
import { startService } from "./_service.ts";

const server = Deno.env.get("DATABASE_URL") !== undefined;
const rate = 2_000;

for (
  const [name, options] of [
    ["3 instances, the leader killed (kill -9) 3 times", { fault: "kill", times: 3, instances: 3 }],
    ["2 instances, rolling deploy: the leader stopped with SIGTERM 3 times", {
      fault: "sigterm",
      times: 3,
      instances: 2,
    }],
    ["2 instances, the leader paused (SIGSTOP) past its lease, then woken", {
      fault: "sigstop",
      times: 1,
      instances: 2,
    }],
    ["2 instances, the leader cut off from Postgres", { fault: "cutoff", times: 1, instances: 2 }],
    ["through pgbouncer (transaction mode): 2 instances, the leader killed twice", {
      fault: "kill",
      times: 2,
      instances: 2,
      pgbouncer: true,
    }],
    ["through pgbouncer (transaction mode): rolling deploy of 2 instances, twice", {
      fault: "sigterm",
      times: 2,
      instances: 2,
      pgbouncer: true,
    }],
  ] as const
) {
  Deno.test({
    name: `fleet: ${name}: exact state, one reader at a time, no commit after takeover`,
    ignore: !server,
    async fn() {
      // Long enough that the feed is still live at the last fault (starts take seconds).
      const total = rate * Math.max(20, 10 + 6 * options.times);
      console.log(JSON.stringify(await fleetScenario({ ...options, total, rate })));
    },
  });
}

Deno.test({
  name: "behind pgbouncer in transaction mode without DATABASE_POOL_MODE, start-up fails naming it",
  ignore: !server,
  async fn() {
    await using database = await createTestDatabase("server");
    await using bouncer = await startPgbouncer(database.url);
    let failure = "";
    try {
      const service = await startService({ DATABASE_URL: bouncer.url });
      try {
        await service.waitFor(() => false, 20_000);
      } finally {
        await service.stop("SIGKILL");
      }
    } catch (error) {
      failure = String(error);
    }
    assert.match(failure, /The service exited \(2\)/);
    assert.match(failure, /transaction-mode pooler[^\n]*set DATABASE_POOL_MODE=transaction/);
  },
});
