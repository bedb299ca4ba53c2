import {
  type ChangeLog,
  type ChangePage,
  type LoggedTransaction,
  type Result,
  type ResultScope,
  type SnapshotBounds,
  visibleIn,
} from "../db/mod.ts";

/** Which changes a subscriber gets: both given, both must match. */
export interface EventFilter {
  exam?: number;
  studentId?: string;
}

/** What one `GET /events` asks for. */
export interface EventRequest {
  filter: EventFilter;
  /** First the stored results that match, then `live`, then changes. */
  snapshot: boolean;
  /** Resume right after this cursor (the header EventSource sends on reconnect). */
  lastEventId?: string;
}

/** Counters for /stats and /metrics. */
export interface EventHubStats {
  subscribers: number;
  /** Subscribers opened since start. */
  opened: number;
  /** `result` events sent, snapshots included. */
  sent: number;
  /** Subscribers disconnected because their buffer filled. */
  slow: number;
  /** Resumes whose cursor was too old or unknown: answered with `reset` and a snapshot. */
  resets: number;
  /** Subscribers refused because `maxSubscribers` were connected. */
  refused: number;
}

export interface EventHubOptions {
  log: ChangeLog;
  /** Bytes queued for one subscriber before it counts as not reading and is cut off. */
  bufferBytes?: number;
  maxSubscribers?: number;
  /** How often the log is read while nothing wakes the hub (a standby hears no commits). */
  pollMs?: number;
  /** A comment (and the current cursor) goes to every subscriber this often. */
  heartbeatMs?: number;
  /** The `retry:` sent at the start of every stream. */
  retryMs?: number;
  onError?: (error: unknown) => void;
}

/**
 * One reader of the change log per instance, fanning what it reads out to
 * every subscriber; see `createEventHub`.
 */
export interface EventHub {
  /**
   * The body of a `GET /events`, once the log could be read; undefined when
   * `maxSubscribers` are connected. Rejects when the database cannot be read.
   */
  open(request: EventRequest): Promise<ReadableStream<Uint8Array> | undefined>;
  /** Something committed: read the log now rather than at the next poll. */
  wake(): void;
  stats(): EventHubStats;
  /** Ends every stream (at shutdown); later `open`s are refused. */
  close(): void;
}

/** A place in the log: after change `k` (1-based) of transaction `xid`. */
interface Position {
  xid: bigint;
  k: number;
}

/** `k` of a position after the whole of its transaction. */
const WHOLE = 2147483647;
/** Transactions read per statement. */
const PAGE = 8;
/** Changes per read of the log, besides the last transaction's (at most a writer's batch). */
const PAGE_CHANGES = 10_000;
/** The longest piece of text queued at once. */
const CHUNK_CHARS = 32 << 10;
/** Results per statement of a snapshot. */
const SNAPSHOT_BATCH = 2_000;

const encoder = new TextEncoder();

const before = (a: Position, b: Position) => a.xid < b.xid || (a.xid === b.xid && a.k < b.k);

/**
 * The change stream's server side. A single loop reads new transactions from
 * the change log (woken by `wake()` on every commit this instance hears of,
 * and at least every `pollMs`) and hands each change to the subscribers whose
 * filter it matches, found through maps by studentId and exam: the cost per
 * change does not grow with filtered subscribers. A subscriber that starts
 * behind the loop (a resume, a snapshot) first reads the log on its own, as
 * fast as it takes the events, then joins the loop.
 *
 * Cursors are `<stream>-<xid>-<k>`: change k of the transaction xid in the
 * database's stream. Every subscriber gets changes in xid order, and a
 * student's changes were applied in that order (one writer applies them, one
 * transaction after another).
 */
export function createEventHub(
  {
    log,
    bufferBytes = 4 << 20,
    maxSubscribers = 1_000,
    pollMs = 100,
    heartbeatMs = 10_000,
    retryMs = 1_000,
    onError = () => {},
  }: EventHubOptions,
): EventHub {
  const counters = { opened: 0, sent: 0, slow: 0, resets: 0, refused: 0 };
  const subscribers = new Set<Subscriber>();
  const unfiltered = new Set<Subscriber>();
  const byStudent = new Map<string, Set<Subscriber>>();
  const byExam = new Map<number, Set<Subscriber>>();
  // Every transaction below `through` has been handed to every subscriber in the loop.
  let through = 0n;
  let stream = "";
  let looping = false;
  let closed = false;
  let wakeUp: (() => void) | undefined;
  // A commit heard while the loop was reading: it reads again at once.
  let woken = false;
  const names = createNameCache(log);

  class Subscriber {
    controller!: ReadableStreamDefaultController<Uint8Array>;
    after: Position = { xid: 0n, k: WHOLE };
    /** Transactions that the snapshot sent had already seen: not sent again. */
    skip: SnapshotBounds | undefined;
    inLoop = false;
    closed = false;
    room: (() => void) | undefined;
    readonly body: ReadableStream<Uint8Array>;
    constructor(readonly filter: EventFilter) {
      this.body = new ReadableStream<Uint8Array>({
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.wakeRoom(),
        cancel: () => this.end(),
      }, { highWaterMark: bufferBytes, size: (chunk) => chunk.byteLength });
    }
    wakeRoom() {
      const room = this.room;
      this.room = undefined;
      room?.();
    }
    matches(change: { studentId: string; exam: number }) {
      return (this.filter.studentId === undefined || this.filter.studentId === change.studentId) &&
        (this.filter.exam === undefined || this.filter.exam === change.exam);
    }
    /** Whether change `k` of transaction `xid` is for it, by position. */
    wants(xid: bigint, k: number) {
      const { after } = this;
      if (xid < after.xid || (xid === after.xid && k <= after.k)) return false;
      return !(this.skip && visibleIn(this.skip, xid));
    }
    /** Queues a line or comment, whatever is queued already. */
    send(text: string) {
      if (!this.closed) this.controller.enqueue(encoder.encode(text));
    }
    /**
     * Queues events, in chunks of about `CHUNK_CHARS` (Deno's HTTP layer
     * holds a few chunks of its own, so their size bounds what it holds too).
     * In the loop, a subscriber that still has more than `bufferBytes` queued
     * from before is cut off instead.
     */
    deliver(texts: string[]) {
      if (this.closed) return;
      if (this.inLoop && (this.controller.desiredSize ?? 0) < 0) {
        counters.slow++;
        this.fail(new Error("The subscriber does not read its events; resume with Last-Event-ID"));
        return;
      }
      let chunk = "";
      for (const text of texts) {
        chunk += text;
        if (chunk.length >= CHUNK_CHARS) {
          this.send(chunk);
          chunk = "";
        }
      }
      if (chunk) this.send(chunk);
      counters.sent += texts.length;
    }
    /** Resolves once the client has taken the queue below the buffer (or left). */
    async drained() {
      while (!this.closed && (this.controller.desiredSize ?? 0) <= 0) {
        await new Promise<void>((resolve) => this.room = resolve);
      }
    }
    fail(error: Error) {
      if (this.closed) return;
      this.controller.error(error);
      this.end();
    }
    close() {
      if (this.closed) return;
      this.controller.close();
      this.end();
    }
    end() {
      if (this.closed) return;
      this.closed = true;
      this.wakeRoom();
      leave(this);
    }
  }

  function join(subscriber: Subscriber, readThrough: bigint) {
    if (!looping && subscribers.size === 0) through = readThrough;
    subscriber.inLoop = true;
    subscribers.add(subscriber);
    const { studentId, exam } = subscriber.filter;
    if (studentId !== undefined) addTo(byStudent, studentId, subscriber);
    else if (exam !== undefined) addTo(byExam, exam, subscriber);
    else unfiltered.add(subscriber);
    if (!looping) {
      looping = true;
      loop();
    }
  }

  function leave(subscriber: Subscriber) {
    if (!subscriber.inLoop) return;
    subscriber.inLoop = false;
    subscribers.delete(subscriber);
    unfiltered.delete(subscriber);
    const { studentId, exam } = subscriber.filter;
    if (studentId !== undefined) removeFrom(byStudent, studentId, subscriber);
    else if (exam !== undefined) removeFrom(byExam, exam, subscriber);
  }

  async function loop() {
    try {
      await run();
    } finally {
      // At once, so that a subscriber joining next starts the loop again.
      looping = false;
    }
  }

  async function run() {
    let failures = 0;
    while (subscribers.size > 0 && !closed) {
      let page: ChangePage;
      try {
        woken = false;
        page = await log.read(through - 1n, PAGE, PAGE_CHANGES);
        failures = 0;
      } catch (error) {
        // The database is away: subscribers keep their connection (and
        // heartbeats), and get what they missed once it is back.
        if (failures++ === 0) onError(error);
        await sleep(Math.min(pollMs * 2 ** failures, 2_000));
        continue;
      }
      stream = page.stream;
      if (page.prunedThrough >= through) {
        // Pruned past what the loop has sent: nobody can be told what is gone.
        // Each resumes with its cursor and gets a reset.
        for (const s of [...subscribers]) s.close();
        through = page.horizon;
        continue;
      }
      try {
        await dispatch(page.transactions, [...subscribers]);
      } catch (error) {
        onError(error);
        await sleep(pollMs);
        continue;
      }
      const last = page.transactions.at(-1);
      through = page.full && last ? last.xid + 1n : page.horizon;
      if (!page.full) await waitForWake();
    }
  }

  /** Hands each change to the subscribers in the loop whose filter it matches. */
  async function dispatch(transactions: LoggedTransaction[], audience: Subscriber[]) {
    if (transactions.length === 0 || audience.length === 0) return;
    const named = await names.of(transactions);
    const pending = new Map<Subscriber, string[]>();
    const add = (subscriber: Subscriber, text: string) => {
      const texts = pending.get(subscriber);
      if (texts) texts.push(text);
      else pending.set(subscriber, [text]);
    };
    const filtered = byStudent.size > 0 || byExam.size > 0;
    for (const t of transactions) {
      const id = `${stream}-${t.xid}-`;
      for (let i = 0; i < t.exams.length; i++) {
        const key = t.students[i];
        const exam = t.exams[i];
        const k = i + 1;
        let text: string | undefined;
        const offer = (subscriber: Subscriber) => {
          if (!subscriber.wants(t.xid, k)) return;
          text ??= resultEvent(named.json(key), exam, t.scores[i], `${id}${k}`);
          add(subscriber, text);
        };
        for (const s of unfiltered) offer(s);
        if (filtered) {
          const students = byStudent.get(named(key));
          if (students) {
            for (const s of students) {
              if (s.filter.exam === undefined || s.filter.exam === exam) offer(s);
            }
          }
          byExam.get(exam)?.forEach(offer);
        }
      }
    }
    for (const [subscriber, texts] of pending) {
      subscriber.deliver(texts);
    }
    const last = transactions.at(-1)!;
    for (const s of audience) {
      if (before(s.after, { xid: last.xid, k: WHOLE })) s.after = { xid: last.xid, k: WHOLE };
    }
  }

  function waitForWake() {
    if (woken) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, pollMs);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });
  }

  const cursor = (p: Position) => `${stream}-${p.xid}-${p.k}`;

  /** Reads the log for one subscriber until it has caught up with the loop. */
  async function catchUp(subscriber: Subscriber) {
    for (;;) {
      if (subscriber.closed || closed) return;
      const { xid, k } = subscriber.after;
      const page = await log.read(k === WHOLE ? xid : xid - 1n, PAGE, PAGE_CHANGES);
      if (page.prunedThrough >= xid + (k === WHOLE ? 1n : 0n)) {
        // Pruned while it caught up: it resumes, and gets a reset.
        return subscriber.close();
      }
      const named = await names.of(page.transactions);
      for (const t of page.transactions) {
        const texts: string[] = [];
        for (let i = 0; i < t.exams.length; i++) {
          const change = { studentId: named(t.students[i]), exam: t.exams[i] };
          if (subscriber.wants(t.xid, i + 1) && subscriber.matches(change)) {
            texts.push(
              resultEvent(
                named.json(t.students[i]),
                change.exam,
                t.scores[i],
                cursor({
                  xid: t.xid,
                  k: i + 1,
                }),
              ),
            );
          }
        }
        if (texts.length) subscriber.deliver(texts);
        subscriber.after = { xid: t.xid, k: WHOLE };
        await subscriber.drained();
        if (subscriber.closed) return;
      }
      const last = page.transactions.at(-1);
      const readThrough = page.full && last ? last.xid + 1n : page.horizon;
      if (before(subscriber.after, { xid: readThrough - 1n, k: WHOLE })) {
        subscriber.after = { xid: readThrough - 1n, k: WHOLE };
      }
      if (!page.full && (readThrough >= through || (!looping && subscribers.size === 0))) {
        return join(subscriber, readThrough);
      }
    }
  }

  /** Sends every stored result the filter matches, as of one snapshot. */
  async function sendSnapshot(subscriber: Subscriber) {
    const { studentId, exam } = subscriber.filter;
    await log.snapshot(async (bounds, read) => {
      let after: Result | undefined;
      for (;;) {
        const scope: ResultScope = studentId !== undefined
          ? { of: "student", studentId, after: exam !== undefined ? exam - 1 : after?.exam }
          : exam !== undefined
          ? { of: "exam", exam, after: after?.studentId }
          : { of: "all", after };
        const limit = studentId !== undefined && exam !== undefined ? 1 : SNAPSHOT_BATCH;
        const rows = await read(scope, limit);
        const texts = rows.filter((r) => subscriber.matches(r)).map((r) =>
          resultEvent(JSON.stringify(r.studentId), r.exam, String(r.score))
        );
        if (texts.length) subscriber.deliver(texts);
        await subscriber.drained();
        if (subscriber.closed || rows.length < limit || limit === 1) break;
        after = rows.at(-1);
      }
      subscriber.after = { xid: bounds.xmin - 1n, k: WHOLE };
      subscriber.skip = bounds;
    });
    subscriber.send("event: live\ndata: {}\n\n");
  }

  async function start(subscriber: Subscriber, request: EventRequest, head: ChangePage) {
    subscriber.send(`retry: ${retryMs}\n\n`);
    let snapshot = request.snapshot;
    if (request.lastEventId !== undefined) {
      const resumed = parseCursor(request.lastEventId, head);
      if (resumed) {
        subscriber.after = resumed;
        snapshot = false;
      } else {
        counters.resets++;
        subscriber.send(
          `event: reset\ndata: ${
            JSON.stringify({
              reason: "The cursor is older than the retained window, or of another database",
            })
          }\n\n`,
        );
        snapshot = true;
      }
    }
    if (snapshot) await sendSnapshot(subscriber);
    else if (request.lastEventId === undefined) {
      subscriber.after = { xid: head.horizon - 1n, k: WHOLE };
    }
    await catchUp(subscriber);
  }

  const heartbeat = setInterval(() => {
    for (const s of subscribers) {
      // The cursor keeps a filtered subscriber's Last-Event-ID in the window.
      const done = { xid: through - 1n, k: WHOLE };
      const at = before(s.after, done) ? done : s.after;
      if (s.skip && through > s.skip.xmax) s.skip = undefined;
      s.send(s.skip ? ":\n\n" : `:\nid: ${cursor(at)}\n\n`);
    }
  }, heartbeatMs);
  const starting = new Set<Subscriber>();

  return {
    async open(request) {
      if (closed || subscribers.size + starting.size >= maxSubscribers) {
        counters.refused++;
        return undefined;
      }
      const head = await log.read(0n, 0, 0);
      stream = head.stream;
      counters.opened++;
      const subscriber = new Subscriber(request.filter);
      starting.add(subscriber);
      // Comments keep a subscriber that is still catching up connected too.
      const keepAlive = setInterval(() => subscriber.send(":\n\n"), heartbeatMs);
      start(subscriber, request, head)
        .catch((error) => {
          onError(error);
          subscriber.fail(error instanceof Error ? error : new Error(String(error)));
        })
        .finally(() => {
          clearInterval(keepAlive);
          starting.delete(subscriber);
        });
      return subscriber.body;
    },
    wake() {
      if (wakeUp) wakeUp();
      else if (looping) woken = true;
    },
    stats: () => ({ subscribers: subscribers.size + starting.size, ...counters }),
    close() {
      closed = true;
      clearInterval(heartbeat);
      wakeUp?.();
      for (const s of [...subscribers, ...starting]) s.close();
    },
  };

  function parseCursor(text: string, head: ChangePage): Position | undefined {
    const match = /^([0-9a-f]{8})-(\d{1,20})-(\d{1,10})$/.exec(text);
    if (!match || match[1] !== head.stream) return undefined;
    const position = { xid: BigInt(match[2]), k: Number(match[3]) };
    if (position.k < 1 || position.k > WHOLE) return undefined;
    // Changes after it must all still be there.
    const pruned = position.xid < head.prunedThrough ||
      (position.xid === head.prunedThrough && position.k !== WHOLE);
    return pruned ? undefined : position;
  }
}

/**
 * The text of one `result` event: `studentId` already JSON, `score` a JSON
 * number's text; snapshot events carry no id.
 */
function resultEvent(studentId: string, exam: number, score: string, id?: string): string {
  return `event: result\n${
    id === undefined ? "" : `id: ${id}\n`
  }data: {"studentId":${studentId},"exam":${exam},"score":${score}}\n\n`;
}

/** A studentId by its dictionary key, and the same as a JSON string. */
interface Names {
  (key: number): string;
  json(key: number): string;
}

/**
 * StudentIds by dictionary key (with their JSON text), kept up to a bound of
 * heap: when it is over, the cache starts again empty. A lookup returned
 * earlier keeps its own map.
 */
function createNameCache(log: ChangeLog, maxBytes = 8 << 20) {
  type Name = { name: string; json: string };
  let names = new Map<number, Name>();
  let bytes = 0;
  return {
    async of(transactions: LoggedTransaction[]): Promise<Names> {
      const cache = names;
      const missing = new Set<number>();
      for (const t of transactions) {
        for (const key of t.students) if (!cache.has(key)) missing.add(key);
      }
      const found = new Map<number, Name>();
      if (missing.size) {
        for (const [key, name] of await log.names(missing)) {
          found.set(key, { name, json: JSON.stringify(name) });
        }
      }
      if (bytes > maxBytes) {
        names = new Map();
        bytes = 0;
      }
      for (const [key, name] of found) {
        names.set(key, name);
        bytes += 96 + 4 * name.name.length;
      }
      const get = (key: number) => cache.get(key) ?? found.get(key)!;
      return Object.assign((key: number) => get(key).name, {
        json: (key: number) => get(key).json,
      });
    },
  };
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V) {
  const set = map.get(key);
  if (set) set.add(value);
  else map.set(key, new Set([value]));
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V) {
  const set = map.get(key);
  set?.delete(value);
  if (set?.size === 0) map.delete(key);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
