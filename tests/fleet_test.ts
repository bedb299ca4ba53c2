// Several instances on one database and one live feed: the leader killed, stopped
// (rolling deploy), paused and cut off, directly and through pgbouncer.
import { fleetScenario } from "./_fleet.ts";

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
      console.log(JSON.stringify(await fleetScenario({ ...options, total: 20 * rate, rate })));
    },
  });
}
