/// <reference lib="deno.worker" />
// Ingest in a thread of its own (see ingest_thread.ts): the feed connection,
// parsing, validation, routing, the writer workers (nested), the checkpoint
// and, against a Postgres server, the competition for the feed.
import {
  classifyError,
  createDb,
  createLeaderLease,
  type Database,
  describeError,
  pruneChanges,
  type Retention,
} from "../db/mod.ts";
import type { Kysely } from "kysely";
import { createIngest } from "./create_ingest.ts";
import type { FromIngest, IngestThreadOptions, ToIngest } from "./ingest_thread.ts";
import { SNAPSHOT_MS } from "./ingest_thread.ts";
import { runLeadership } from "./leadership.ts";

const post = (message: FromIngest) => self.postMessage(message);
const log = (record: Record<string, unknown>) => post({ type: "log", record });
const stopping = new AbortController();

self.onmessage = ({ data }: MessageEvent<ToIngest>) => {
  if (data.type === "stop") stopping.abort();
  else {
    run(data.options).then(
      () => post({ type: "done" }),
      (error) => post({ type: "done", error: describeError(error) }),
    );
  }
};

async function run(options: IngestThreadOptions) {
  const { databaseUrl, poolMode, leaseMs } = options;
  // The checkpoint's own connection; the writers have theirs.
  const control = createDb({
    url: databaseUrl,
    poolMode,
    max: 1,
    applicationName: "scorestream-ingest",
  });
  const ingest = createIngest({
    scoresUrl: options.scoresUrl,
    feedId: options.feedId,
    demoRate: options.demoRate,
    maxEventBytes: options.maxEventBytes,
    writers: options.writers,
    databaseUrl,
    poolMode,
    origin: options.instanceId,
    db: control.db,
    onChanged: (changed) => post({ type: "changed", changed }),
    onFeedError: (error) => post({ type: "failed", part: "feed", error }),
    onDatabaseError: (error) => post({ type: "failed", part: "database", error }),
    log,
  });
  const { stats } = ingest;
  const leadership = leaseMs === undefined ? undefined : {
    leaseMs,
    lease: createLeaderLease({
      url: databaseUrl,
      feed: options.feedId,
      instance: options.instanceId,
      leaseMs,
      poolMode,
    }),
  };
  if (leadership) stats.role = "standby";
  const sendSnapshot = () => post({ type: "snapshot", snapshot: stats.snapshot() });
  sendSnapshot();
  const timer = setInterval(sendSnapshot, SNAPSHOT_MS);
  const pruning = options.retention && prunePeriodically(control.db, options.retention);
  try {
    if (!leadership) return await ingest.run(stopping.signal);
    await runLeadership({
      ...leadership,
      signal: stopping.signal,
      // A plain fence: the writers receive it, and signals cannot be sent.
      lead: ({ feed, epoch, lost }) => ingest.run(lost, { feed, epoch }),
      // A role that may not write cannot lead: ingest is stuck, and /readyz says why.
      onAttempt: (error) =>
        stats.leadershipAttempted(
          error === undefined ? undefined : describeError(error),
          error !== undefined && classifyError(error) === "permanent",
        ),
      onStatus: ({ role, leader, why }) => {
        stats.role = role;
        stats.epoch = leader?.epoch ?? null;
        stats.leader = leader && { instance: leader.instance, since: leader.since.toISOString() };
        if (role === "leader") stats.takeovers++;
        log({
          level: "info",
          msg: role === "leader" ? "leading the feed" : "standing by",
          epoch: stats.epoch,
          leader: leader?.instance ?? null,
          why,
        });
      },
      log,
    });
  } finally {
    clearInterval(timer);
    pruning?.stop();
    await Promise.all([control.close(), leadership?.lease.close()]);
    sendSnapshot();
  }
}

/**
 * Trims the change log to its retained window every `PRUNE_MS`. Any instance
 * that ingests may (a standby's deletes are the leader's to do too, and
 * harmless twice); a failure is retried at the next turn.
 */
function prunePeriodically(db: Kysely<Database>, retention: Retention) {
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      await pruneChanges(db, retention);
    } catch (error) {
      log({ level: "warn", msg: "cannot prune the change log", error: describeError(error) });
    } finally {
      running = false;
    }
  }, PRUNE_MS);
  return { stop: () => clearInterval(timer) };
}

const PRUNE_MS = 5_000;
