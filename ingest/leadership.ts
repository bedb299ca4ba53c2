import {
  describeError,
  type Leader,
  type LeaderLease,
  type Term,
  TransactionPoolerError,
} from "../db/mod.ts";

/** What an instance is for its feed, reported on every change. */
export interface LeadershipStatus {
  role: "leader" | "standby";
  /** The leader as last seen, null before the first look. */
  leader: Leader | null;
  /** Why a term ended, when it did. */
  why?: string;
}

/** The options of {@linkcode runLeadership}. */
export interface LeadershipOptions {
  lease: LeaderLease;
  /** The lease's duration, as given to the lease. */
  leaseMs: number;
  /** How often a standby tries to take the lead. */
  pollMs?: number;
  /** Ends the loop: a leader ends its term and hands over. */
  signal: AbortSignal;
  /**
   * Runs one term: reads the feed until `term.lost` aborts, then drains. When
   * it returns or throws, the term ends and the instance stands by again.
   */
  lead(term: Term): Promise<void>;
  onStatus?(status: LeadershipStatus): void;
  /** After each try to take or keep the lead: its error, or undefined when it went through. */
  onAttempt?(error?: unknown): void;
  log(record: Record<string, unknown>): void;
}

/**
 * Competes for the feed until `signal` aborts. A standby tries to take the
 * lead every `pollMs`; a leader renews its lease every fifth of it and ends
 * its term when a renewal is refused (someone else took over), when its lock
 * is lost (a standby may take over at once), or when renewals have failed for
 * four fifths of the lease: before the lease can expire for the others. After
 * every term it releases the lease, so a stopping leader hands over at once;
 * a deposed one stands by and never exits for it. Only a configuration that
 * cannot work (`TransactionPoolerError`) or a failing `lead` ends the loop
 * early, by throwing.
 */
export async function runLeadership(
  { lease, leaseMs, pollMs = 250, signal, lead, onStatus = () => {}, onAttempt = () => {}, log }:
    LeadershipOptions,
): Promise<void> {
  let leader: Leader | null = null;
  let role: LeadershipStatus["role"] | undefined;
  // Why the last term ended: told with the next status, which names the new leader.
  let why: string | undefined;
  const report = (next: LeadershipStatus["role"], seen: Leader | null | undefined) => {
    const changed = next !== role || (seen ?? leader)?.epoch !== leader?.epoch;
    role = next;
    if (seen) leader = seen;
    if (changed) onStatus({ role, leader, why });
    why = undefined;
  };
  let failures = 0;
  while (!signal.aborted) {
    let acquired;
    try {
      acquired = await lease.tryAcquire();
      failures = 0;
      onAttempt();
    } catch (error) {
      if (error instanceof TransactionPoolerError) throw error;
      onAttempt(error);
      if (failures++ === 0) {
        log({ level: "warn", msg: "cannot compete for the feed", error: describeError(error) });
      }
      report("standby", leader);
      await sleep(Math.min(pollMs * 2 ** failures, 2_000), signal);
      continue;
    }
    if (!acquired.term) {
      report("standby", acquired.leader);
      await sleep(pollMs, signal);
      continue;
    }
    const { term } = acquired;
    report("leader", acquired.leader);
    const ended = new AbortController();
    const lost = AbortSignal.any([term.lost, ended.signal, signal]);
    const keeping = keepLease({ lease, leaseMs, term, lost, lose: (why) => ended.abort(why) });
    let failure: unknown;
    try {
      await lead({ ...term, lost });
    } finally {
      ended.abort(new Error("the term's ingest ended"));
      failure = await keeping;
      // Best effort, and bounded: an unreleased lease only expires later.
      const released = lease.release(term).catch((error) =>
        log({ level: "warn", msg: "cannot release the lease", error: describeError(error) })
      );
      await Promise.race([released, sleep(1_000, new AbortController().signal)]);
    }
    if (failure) throw failure;
    why = lost.reason instanceof Error ? lost.reason.message : String(lost.reason);
  }
}

/**
 * Renews `term` until `lost` aborts; calls `lose` when it must end. Returns
 * the error that must end the process, if any.
 */
async function keepLease({ lease, leaseMs, term, lost, lose }: {
  lease: LeaderLease;
  leaseMs: number;
  term: Term;
  lost: AbortSignal;
  lose(why: Error): void;
}): Promise<unknown> {
  const every = leaseMs / 5;
  // Measured from sending a renewal, which the server stamps later: the lease
  // lasts at least this long for the others.
  let renewedAt = performance.now();
  const giveUpAt = () => renewedAt + leaseMs * 0.8;
  while (!lost.aborted) {
    await sleep(every, lost);
    if (lost.aborted) break;
    const sentAt = performance.now();
    if (sentAt >= giveUpAt()) {
      lose(new Error(`no renewal of the lease for ${Math.round(sentAt - renewedAt)} ms`));
      break;
    }
    try {
      const renewed = await Promise.race([
        lease.renew(term),
        sleep(giveUpAt() - sentAt, lost).then(() => undefined),
      ]);
      if (renewed === false) lose(new Error("another instance took over the lease"));
      if (renewed) renewedAt = sentAt;
    } catch (error) {
      if (error instanceof TransactionPoolerError) {
        lose(error);
        return error;
      }
    }
  }
  return undefined;
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
