// The fault-injection suite at soak sizes, round after round for SOAK_MINUTES
// (default 15): `deno task soak` with DATABASE_URL pointing at a local Postgres
// server that the soak may restart. Each scenario's report is printed as a JSON
// line; the process exits 1 at the first failure.
import {
  databaseOutages,
  gzipBombFeed,
  hostileFeedScenario,
  killAndRestart,
  localCluster,
  longStudentIds,
  oversizedEventReplayed,
  poisonPillRestart,
  type Report,
  selectOnlyRole,
  sigtermAtFullSpeed,
  sigtermDuringOutage,
} from "./_faults.ts";

const minutes = Number(Deno.env.get("SOAK_MINUTES") ?? "15");
if (!(minutes > 0)) throw new RangeError(`Cannot soak for SOAK_MINUTES="${minutes}"`);
if (!Deno.env.get("DATABASE_URL")) throw new Error("The soak needs DATABASE_URL");
const cluster = await localCluster();

const scenarios: [string, () => Promise<Report>][] = [
  [
    "kill -9 restarts",
    () => killAndRestart({ total: 400_000, rate: 8_000, dropEvery: 3_000, kills: 12 }),
  ],
  ["database outages", () =>
    databaseOutages({
      total: 2_400_000,
      rate: 20_000,
      outageMs: 60_000,
      clusterStop: cluster ? ["fast", "immediate"] : [],
      clusterDownMs: 15_000,
    })],
  ["hostile feed", () => hostileFeedScenario({ valid: 200_000 })],
  ["SIGTERM at full speed", () => sigtermAtFullSpeed({ total: 2_000_000, stopAfter: 500_000 })],
  ["SIGTERM during an outage", () => sigtermDuringOutage({ total: 600_000, rate: 30_000 })],
  ["poison pills across kill -9", () => poisonPillRestart({ total: 300_000 })],
  ["oversized event, replayed", () => oversizedEventReplayed({ total: 200_000 })],
  ["SELECT-only role", () => selectOnlyRole({ total: 300_000 })],
  ["gzip bombs", () => gzipBombFeed({ total: 200_000, bombs: 4, inflateGiB: 8 })],
  ["long studentIds", () => longStudentIds({ total: 400_000, maxRssMiB: 320 })],
];

const start = performance.now();
const totals: Record<string, number> = {};
let round = 0;
do {
  round++;
  for (const [name, run] of scenarios) {
    const began = performance.now();
    try {
      const report = await run();
      console.log(JSON.stringify({ round, scenario: name, ok: true, ...report }));
      for (const [key, value] of Object.entries(report)) {
        if (typeof value === "number" && /^(events|kills|validEvents|outageMs)$/.test(key)) {
          totals[key] = (totals[key] ?? 0) + value;
        }
      }
    } catch (error) {
      console.log(JSON.stringify({ round, scenario: name, ok: false }));
      console.error(error);
      Deno.exit(1);
    }
    console.error(`${name}: ${Math.round((performance.now() - began) / 1000)} s`);
  }
} while (performance.now() - start < minutes * 60_000);
console.log(
  JSON.stringify({ rounds: round, minutes: (performance.now() - start) / 60_000, totals }),
);
