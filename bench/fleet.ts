// deno task bench:fleet [--lease-ms 5000] [--times 3] [--rate 2000]
//
// Takeover and handover times of a fleet of real service processes on one database
// and one live feed (tests/_fleet.ts, whose scenarios also check the final state
// against the oracle): how long the feed went unread after the leader was killed
// (kill -9), paused (SIGSTOP, past its lease), or stopped with SIGTERM (a rolling
// deploy's handover: from the old leader's feed connection closing to the new
// one's opening), directly and through pgbouncer in transaction mode. The gap is
// measured at the feed server: from the fault (or the close) to the next request.
import { parseArgs } from "node:util";
import { type Fault, fleetScenario } from "../tests/_fleet.ts";
import { ADMIN_URL, describeMachine } from "./_harness.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "lease-ms": { type: "string", default: "5000" },
    times: { type: "string", default: "3" },
    rate: { type: "string", default: "2000" },
  },
});
const leaseMs = Number(values["lease-ms"]);
const times = Number(values.times);
const rate = Number(values.rate);
// The scenarios create their databases on the server of DATABASE_URL.
if (!Deno.env.get("DATABASE_URL")) Deno.env.set("DATABASE_URL", ADMIN_URL);

console.log(await describeMachine("bench:fleet"));
console.log(`lease ${leaseMs} ms, ${rate} events/s, 2 instances, each fault ${times} times`);
const runs: [string, Fault, boolean][] = [
  ["takeover after kill -9", "kill", false],
  ["takeover after SIGSTOP", "sigstop", false],
  ["handover gap on SIGTERM", "sigterm", false],
  ["takeover after kill -9, pgbouncer", "kill", true],
  ["handover gap on SIGTERM, pgbouncer", "sigterm", true],
];
for (const [what, fault, pgbouncer] of runs) {
  // A paused leader is woken, stopped and replaced each time, so once per run.
  const rounds = fault === "sigstop" ? 1 : times;
  const samples: number[] = [];
  for (let round = 0; round < times; round += rounds) {
    const report = await fleetScenario({
      fault,
      times: rounds,
      instances: 2,
      total: rate * (8 + 6 * rounds + leaseMs / 1000),
      rate,
      leaseMs,
      pgbouncer,
    });
    samples.push(...String(report.takeoverMs).split(",").map(Number));
  }
  samples.sort((a, b) => a - b);
  console.log(
    `${what.padEnd(36)} median ${samples[samples.length >> 1]} ms, max ${samples.at(-1)} ms ` +
      `(${samples.join(", ")})`,
  );
}
