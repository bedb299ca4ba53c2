// The fleet scenarios: several real service processes on one database and one live
// feed with regrades, their leader killed, stopped, paused or cut off; checked
// exactly against the oracle. tests/fleet_test.ts runs them at CI sizes, and
// bench/fleet.ts prints their takeover times.
import assert from "node:assert/strict";
import postgres from "postgres";
import { CHANGES_CHANNEL } from "../db/mod.ts";
import { createTestDatabase } from "./_db.ts";
import { demoEvents, type Report, stopWithin, withServiceOutput } from "./_faults.ts";
import { demoFeed, type FeedRequest, serveFeed } from "./_feed_server.ts";
import { startPgbouncer } from "./_pgbouncer.ts";
import { type Service, startService } from "./_service.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";
import { until } from "./_wait.ts";
import { assertMatchesOracle, expectedState } from "./oracle.ts";

/** What is done to the leader, again and again. */
export type Fault = "kill" | "sigterm" | "sigstop" | "cutoff";

/** The options of {@linkcode fleetScenario}. */
export interface FleetOptions {
  fault: Fault;
  /** How many times. */
  times: number;
  /** Instances running at once. */
  instances: number;
  total: number;
  rate: number;
  leaseMs?: number;
  /** Through pgbouncer in transaction mode (DATABASE_POOL_MODE=transaction). */
  pgbouncer?: boolean;
}

interface Instance {
  id: string;
  service: Service;
  /** When set, the proxy between this instance and Postgres. */
  proxy?: ReturnType<typeof startTcpProxy>;
}

const round = (ms: number) => Math.round(ms);

/** The role an instance reports, or undefined when it does not answer. */
async function role(service: Service): Promise<string | undefined> {
  try {
    return (await service.stats()).ingest.role as string;
  } catch {
    return undefined;
  }
}

/**
 * Pairs of feed connections open at the same time, except those of `paused`; the
 * feed server notices a closed connection only when it next writes, so overlaps of
 * under `slackMs` count as none.
 */
export function overlaps(
  requests: FeedRequest[],
  { paused = new Set<FeedRequest>(), slackMs = 20 } = {},
): string[] {
  const found: string[] = [];
  const open = requests.filter((r) => !paused.has(r));
  for (let i = 0; i < open.length; i++) {
    for (let j = i + 1; j < open.length; j++) {
      const [a, b] = [open[i], open[j]];
      const overlap = Math.min(a.closedAt ?? Infinity, b.closedAt ?? Infinity) -
        Math.max(a.at, b.at);
      if (overlap > slackMs) found.push(`connections ${i} and ${j} for ${round(overlap)} ms`);
    }
  }
  return found;
}

/**
 * Runs `instances` identical services (ROLE=all, one database, one feed with
 * regrades) and applies `fault` to the leader `times` times, each time measuring
 * how long the feed went unread. Asserts that the final state equals the oracle,
 * seen through a standby as well as through the leader; that the feed was never
 * read by two instances at once (a paused leader's connection aside); and that no
 * instance committed after another had taken over from it (commit notifications
 * carry their instance: each instance's commits are one run).
 */
export async function fleetScenario(
  { fault, times, instances, total, rate, leaseMs = 2_000, pgbouncer = false }: FleetOptions,
): Promise<Report> {
  const seed = 1 + Math.floor(Math.random() * 1e9);
  const regradeRate = 0.1;
  const feed = serveFeed(demoFeed({ seed, rate, total, regradeRate, retryMs: 100 }));
  const database = await createTestDatabase("server");
  const bouncer = pgbouncer ? await startPgbouncer(database.url) : undefined;
  const commits: string[] = [];
  const listener = postgres(database.url, { max: 1, onnotice: () => {} });
  await listener.listen(CHANGES_CHANNEL, (origin) => {
    // Change listeners send heartbeats on the same channel.
    if (origin.startsWith("fleet-") && commits.at(-1) !== origin) commits.push(origin);
  });
  const fleet: Instance[] = [];
  let started = 0;
  const start = async (viaProxy = false) => {
    const id = `fleet-${++started}`;
    let url = bouncer?.url ?? database.url;
    let proxy: Instance["proxy"];
    if (viaProxy) {
      const target = new URL(url);
      proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 5432) });
      const proxied = new URL(url);
      proxied.hostname = "127.0.0.1";
      proxied.port = String(proxy.port);
      url = proxied.href;
    }
    const service = await startService({
      SCORES_URL: feed.url,
      DATABASE_URL: url,
      INSTANCE_ID: id,
      LEASE_MS: String(leaseMs),
      WRITERS: "2",
      ...pgbouncer && { DATABASE_POOL_MODE: "transaction" },
    }, { outputLimit: 200_000 });
    const instance = { id, service, proxy };
    fleet.push(instance);
    await until(`${id} to be ready`, async () => {
      const response = await fetch(`${service.url}/readyz`).catch(() => undefined);
      await response?.body?.cancel();
      return response?.ok;
    }, 60_000).catch((error) => {
      throw withServiceOutput(error, service);
    });
    return instance;
  };
  const leader = (except?: Instance) =>
    until("an instance to lead", async () => {
      for (const instance of fleet) {
        if (instance !== except && await role(instance.service) === "leader") return instance;
      }
      return undefined;
    }, 60_000);
  const remove = (instance: Instance) => fleet.splice(fleet.indexOf(instance), 1);
  const nextConnection = (index: number) =>
    until("the feed to be read again", () => feed.requests[index], 60_000);

  const report: Report = { fault, times, instances, events: total, rate, leaseMs, pgbouncer };
  const gaps: number[] = [];
  const paused = new Set<FeedRequest>();
  let fenced = 0;
  try {
    // With cut-offs, every instance reaches Postgres through a proxy of its own.
    const cut = fault === "cutoff";
    await start(cut);
    await leader();
    while (fleet.length < instances) await start(cut);
    for (let time = 1; time <= times; time++) {
      const current = await leader();
      const applied = (await current.service.stats()).ingest.applied;
      const before = await current.service.waitFor(
        (s) => s.ingest.applied >= applied + rate / 2,
        60_000,
      );
      assert.ok(Number(before.ingest.lastEventId) < total - 1, "the feed is live at the fault");
      const asked = feed.requests.length;
      const reading = feed.requests[asked - 1];
      const faultAt = performance.now();
      if (fault === "kill") {
        await current.service.stop("SIGKILL");
        remove(current);
      } else if (fault === "sigterm") {
        const exit = await stopWithin(current.service, "SIGTERM", 12_000);
        assert.equal(exit.code, 0, "a leader stopped with SIGTERM exits 0");
        remove(current);
      } else if (fault === "sigstop") {
        Deno.kill(current.service.pid, "SIGSTOP");
        paused.add(reading);
      } else {
        current.proxy!.down();
      }
      const taken = await nextConnection(asked);
      // A handover's gap starts when the old leader stopped reading.
      gaps.push(
        taken.at - (fault === "sigterm" ? reading.closedAt ?? faultAt : faultAt),
      );
      const next = await leader(current);
      assert.notEqual(next, current);
      if (fault === "sigstop" || fault === "cutoff") {
        // Let the new leader commit past the old one's position first.
        const progress = (await next.service.stats()).ingest.applied;
        await next.service.waitFor((s) => s.ingest.applied > progress + rate / 4, 60_000);
        if (fault === "sigstop") Deno.kill(current.service.pid, "SIGCONT");
        else current.proxy!.up();
        const woken = await current.service.waitFor(
          (s) => s.ingest.role === "standby" && Number(s.ingest.epoch) >= time + 1,
          60_000,
        );
        fenced += woken.ingest.fenced as number;
        // So that each instance leads at most once (see the commit runs below).
        await current.service.stop("SIGTERM");
        remove(current);
      }
      while (fleet.length < instances) await start(cut);
    }
    const final = await leader();
    const events = demoEvents(seed, total, { regradeRate });
    const expected = expectedState(events);
    await final.service.waitFor(
      (s) => s.ingest.lastEventId === String(total - 1) && s.results === expected.results,
      120_000,
    );
    const standby = fleet.find((i) => i !== final)!;
    await assertMatchesOracle(final.service, expected);
    // A standby serves what the leader committed (its cache hears of every commit).
    await until("the standby to count every result", async () => {
      try {
        return (await standby.service.stats()).results === expected.results;
      } catch {
        return false;
      }
    });
    await assertMatchesOracle(standby.service, expected);
    assert.deepEqual(overlaps(feed.requests, { paused }), [], "one reader at a time");
    const runs = new Map<string, number>();
    for (const origin of commits) runs.set(origin, (runs.get(origin) ?? 0) + 1);
    assert.deepEqual(
      [...runs].filter(([, n]) => n > 1),
      [],
      `no instance committed after losing the lead (commits by ${commits.join(", ")})`,
    );
    if (fault === "sigstop" || fault === "cutoff") report.fencedStatementsOfOldLeaders = fenced;
    Object.assign(report, {
      takeoverMs: gaps.map(round).join(","),
      maxTakeoverMs: round(Math.max(...gaps)),
      leaders: commits.length,
      feedConnections: feed.requests.length,
    });
    return report;
  } catch (error) {
    const current = fleet.find((i) => i.service) ?? undefined;
    throw withServiceOutput(
      new Error(`${(error as Error).message}\ncommits by: ${commits.join(", ")}`, {
        cause: error,
      }),
      current?.service,
    );
  } finally {
    for (const instance of fleet) {
      try {
        Deno.kill(instance.service.pid, "SIGCONT");
      } catch { /* gone */ }
      await instance.service.stop("SIGKILL");
      await instance.proxy?.close();
    }
    await listener.end({ timeout: 1 });
    await feed.close();
    await bouncer?.close();
    await database.close();
  }
}
