import type { Kysely } from "kysely";
import { type ApiOptions, createApi, type LogEntry, type ReadCache } from "../../api/mod.ts";
import { applyScores, createQueries, type Database, isMigrated } from "../../db/mod.ts";
import { shardOf } from "../../ingest/shard.ts";
import { createTestDatabase, type TestDatabase, type TestDatabaseKind } from "../_db.ts";
import { finalScores } from "../oracle.ts";

/** One score event of the stream, in order. */
export type ScoreEvent = [studentId: string, exam: number, score: number];

/** studentIds that exercise byte order, escaping, URL encoding and length limits. */
export const SPECIAL_IDS = [
  "Logan_Harber74",
  "a",
  "B",
  "Z",
  "é",
  "日本",
  "\uFF21", // sorts before U+1F600 in UTF-8, after it in UTF-16
  "😀",
  "a/b",
  "a b",
  'quote"s',
  "back\\slash",
  "%41",
  "?x",
  "#hash",
  "日本/テスト",
  "trend",
  "x".repeat(128),
  "😀".repeat(128), // 128 characters, 256 UTF-16 code units
];

export const EXAMS = [0, 1, 7, 1559, 2147483647];

/** Scores whose text form is easy to get wrong. */
export const TRICKY_SCORES = [0, 1, 0.1 + 0.2, 0.9999999999999999, 0.123456789012345678, 1e-7];

/** A deterministic stream with regrades: special ids on a few exams, many plain students. */
export function seedEvents(): ScoreEvent[] {
  let state = 42;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const events: ScoreEvent[] = [];
  SPECIAL_IDS.forEach((id, i) => {
    EXAMS.forEach((exam, j) => {
      if ((i + j) % 3 !== 0) events.push([id, exam, TRICKY_SCORES[(i + j) % TRICKY_SCORES.length]]);
    });
  });
  // Logan takes many exams, for a long list of one student's results.
  for (let exam = 100; exam < 160; exam++) events.push(["Logan_Harber74", exam, random()]);
  // Ninety students share exam 1559 and a few others: over 100 students in
  // all, and long exam pages.
  for (let n = 0; n < 90; n++) {
    for (const exam of [1559, 2000 + (n % 7), 3000 + (n % 11)]) {
      events.push([`Student_${n}`, exam, Math.round(random() * 1000) / 1000]);
    }
  }
  // Regrades: the later score replaces the earlier one.
  for (let n = 0; n < 90; n += 3) events.push([`Student_${n}`, 1559, random()]);
  events.push(["a", 1, 0.5], ["a", 1, 0.75]);
  return events;
}

/**
 * Writes events through the writers' own path, applyScores(), as they do: each
 * student always on its writer (shardOf), in stream order, one row per (student,
 * exam) in each call.
 */
export async function applyEvents(
  db: Kysely<Database>,
  events: ScoreEvent[],
  { writers = 2, batch = 100 } = {},
): Promise<void> {
  for (let start = 0; start < events.length; start += batch) {
    const perWriter = new Map<number, Map<string, ScoreEvent>>();
    for (const event of events.slice(start, start + batch)) {
      const writer = shardOf(event[0], writers);
      if (!perWriter.has(writer)) perWriter.set(writer, new Map());
      const rows = perWriter.get(writer)!;
      const key = `${event[1]} ${event[0]}`;
      rows.delete(key);
      rows.set(key, event);
    }
    for (const [writer, rows] of perWriter) {
      const list = [...rows.values()];
      await applyScores(db, writer, {
        names: list.map((e) => e[0]),
        exams: list.map((e) => e[1]),
        scores: list.map((e) => e[2]),
      }, []);
    }
  }
}

/**
 * `app` behind `readCache`, as main.ts serves it: `request()` takes a path,
 * like Hono's `app.request()`.
 */
export function behindReadCache(readCache: ReadCache, app: ReturnType<typeof createApi>) {
  const fetch = readCache.inFrontOf(app);
  return (path: string, init?: RequestInit) =>
    Promise.resolve(fetch(new Request(new URL(path, "http://localhost"), init)));
}

/** A seeded database and an API over it; disposing it drops the database. */
export interface ApiFixture extends AsyncDisposable {
  app: ReturnType<typeof createApi>;
  database: TestDatabase;
  events: ScoreEvent[];
  scores: Map<string, Map<number, number>>;
  logs: LogEntry[];
  /** GET `path` and parse the JSON body, asserting nothing. */
  get(path: string, init?: RequestInit): Promise<{ status: number; body: unknown; res: Response }>;
}

export async function createApiFixture(
  kind: TestDatabaseKind,
  options: Partial<ApiOptions> = {},
  events: ScoreEvent[] = seedEvents(),
): Promise<ApiFixture> {
  const database = await createTestDatabase(kind);
  await applyEvents(database.db, events);
  const logs: LogEntry[] = [];
  const app = createApi({
    queries: createQueries(database.db),
    ready: () => isMigrated(database.db),
    log: (entry) => logs.push(entry),
    ...options,
  });
  return {
    app,
    database,
    events,
    scores: finalScores(events.map(([studentId, exam, score]) => ({ studentId, exam, score }))),
    logs,
    async get(path, init) {
      const res = await app.request(path, init);
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: the raw text is the body
      }
      return { status: res.status, body, res };
    },
    [Symbol.asyncDispose]: () => database.close(),
  };
}

/** A path segment for a studentId, percent-encoded. */
export const seg = (s: string | number) => encodeURIComponent(String(s));
