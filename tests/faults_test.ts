// The fault-injection suite at CI sizes (a few minutes); `deno task soak` runs it longer.
import {
  databaseOutages,
  gzipBombFeed,
  hostileFeedScenario,
  killAndRestart,
  localCluster,
  longStudentIds,
  oversizedEventReplayed,
  poisonPillRestart,
  selectOnlyRole,
  sigtermAtFullSpeed,
  sigtermDuringOutage,
} from "./_faults.ts";

const server = Deno.env.get("DATABASE_URL") !== undefined;

Deno.test({
  name:
    "6 kill -9 restarts during a live feed cut every 2,500 events lose and double-count nothing",
  ignore: !server,
  async fn() {
    console.log(await killAndRestart({ total: 60_000, rate: 4_000, dropEvery: 2_500, kills: 6 }));
  },
});

Deno.test({
  name: "SIGTERM at full speed exits 0 within 10 s and a restart completes the feed exactly",
  ignore: !server,
  async fn() {
    console.log(await sigtermAtFullSpeed({ total: 300_000, stopAfter: 100_000 }));
  },
});

Deno.test({
  name: "a hostile feed (huge events, bad bytes and JSON, junk types, 5xx and 429 answers): " +
    "valid events stored exactly, the rest quarantined, ignored or cut off",
  ignore: !server,
  async fn() {
    console.log(await hostileFeedScenario({ valid: 20_000 }));
  },
});

Deno.test({
  name: "poison pills (a 3,000-CJK-character id with data: not json, a 100,000-character id) " +
    "across kill -9 and a restart: quarantined once each, ingest goes past, state exact",
  ignore: !server,
  async fn() {
    console.log(await poisonPillRestart({ total: 30_000 }));
  },
});

Deno.test({
  name: "one oversized (1.5 MB) event from a replaying feed is skipped, quarantined with id, " +
    "size and excerpt, and resumed past; the rest stored exactly",
  ignore: !server,
  async fn() {
    console.log(await oversizedEventReplayed({ total: 10_000 }));
  },
});

Deno.test({
  name: "a SELECT-only role with ROLE=all: /readyz 503 naming 42501 and ingest.stuck; " +
    "after GRANT it recovers and stores the feed exactly",
  ignore: !server,
  async fn() {
    console.log(await selectOnlyRole({ total: 20_000 }));
  },
});

Deno.test({
  name: "a gzip-bomb feed: /healthz answers throughout, each bomb is failed as broken, " +
    "ingest resumes once the feed is normal, state exact",
  ignore: !server,
  async fn() {
    console.log(await gzipBombFeed({ total: 10_000, bombs: 2, inflateGiB: 4 }));
  },
});

Deno.test({
  name: "200k distinct valid 128-code-point studentIds at full speed into one writer: " +
    "state exact, peak RSS bounded",
  ignore: !server,
  async fn() {
    console.log(await longStudentIds({ total: 200_000, maxRssMiB: 320 }));
  },
});

Deno.test({
  name:
    "SIGTERM while Postgres is away exits 0 within 10 s and a restart completes the feed exactly",
  ignore: !server,
  async fn() {
    console.log(await sigtermDuringOutage({ total: 200_000, rate: 30_000 }));
  },
});

// The real restart needs the local cluster behind DATABASE_URL, as in CI.
const cluster = server ? await localCluster() : undefined;

Deno.test({
  name: "Postgres away for 30 s, then restarted" + (cluster ? " (fast)" : " (skipped: no local " +
    "cluster)") +
    ": no crash, 503 meanwhile, backpressure, nothing lost",
  ignore: !server,
  async fn() {
    console.log(
      await databaseOutages({
        total: 600_000,
        rate: 20_000,
        outageMs: 30_000,
        clusterStop: cluster ? ["fast"] : [],
      }),
    );
  },
});
