import { setTimeout as delay } from "node:timers/promises";
// The built-in feed: a stand-in for the original public feed of exam scores, deterministic
// from a seed so that tests and benchmarks can compute the state it should leave behind.

/** One score as the demo feed sends it in an event's data. */
export interface DemoScore {
  exam: number;
  studentId: string;
  score: number;
}

/** How the demo feed draws its events; every field has a default. */
export interface ScoreEventOptions {
  /** Size of the student pool (default 20,000). */
  students?: number;
  /** Results per exam before the next exam starts (default 500). */
  examSize?: number;
  /** Share of events that re-send a recent (studentId, exam) with a new score (default 0.02). */
  regradeRate?: number;
}

/** Faults the demo feed can inject, for the fault-injection suite. */
export interface DemoFeedFaults {
  /**
   * Ends each connection's body after this many complete events, in the middle of the
   * next one: a client must not dispatch the cut-off event, and must resume before it.
   */
  dropEvery?: number;
}

/** Options of {@linkcode createDemoFeed}. */
export interface DemoFeedOptions extends ScoreEventOptions {
  /** Any safe integer (default 1). */
  seed?: number;
  /** Events per second (default 5); 0 or Infinity sends as fast as the client reads. */
  rate?: number;
  /** Events in the whole feed (default Infinity): ids run from 0 to total - 1. */
  total?: number;
  /** A `: keep-alive` comment after this long without sending anything (default 15 s). */
  keepAliveMs?: number;
  faults?: DemoFeedFaults;
}

const FIRST_EXAM = 1000;
// How far back, in events, a regrade reaches for the result it replaces.
const REGRADE_WINDOW = 2000;
// Strings are encoded to one chunk at this size: large chunks are what lets the feed
// outrun any consumer at full speed.
const CHUNK_CHARS = 64 * 1024;

const FIRST_NAMES = `
  Aaliyah Abigail Adrian Aiden Alana Alec Alejandra Alexa Alfredo Alice Alvina Amara Amelia
  Anahi Andre Angelica Annabel Antonio Ariane Arlo Aubree Audrey Ava Axel Bailey Beatrice
  Benjamin Bennie Bernadette Bettie Blaise Brandon Brenna Brooke Bryce Caden Caleb Camila
  Candice Carmen Carter Cassidy Cecil Celine Chad Chelsea Christop Clara Clemens Colby Cordelia
  Cristina Dakota Dallas Damian Daphne Darion Dawson Delia Demarco Desmond Devon Dixie Dominic
  Dora Dulce Dylan Easton Edgar Eldon Elena Eliza Ellis Elmo Elsa Emely Emmett Enrique Esther
  Ethan Eula Evan Felipe Fiona Flavio Florence Frances Gabriel Gage Garret Gemma Gianni Gloria
  Grace Hailey Hank Harmony Hayden Heath Helena Hilda Hudson Ian Imani Isaac Isabel Ivy Jace
  Jada Jaden Jarrod Jasmin Jasper Javier Jayda Jensen Jett Joanna Joel Josefina Juliet Justus
  Kaden Kaitlin Kara Karina Kaylin Keagan Keanu Kelsie Kendra Kian Kira Laila Lamar Lana Laura
  Leif Leonel Liam Lila Logan Lorena Lucas Luna Mabel Maddison Malik Marcel Margot Mateo Maxime
  Maya Micah Milo Mina Mitchel Molly Morgan Nadia Nash Nathan Nia Noah Nora Oda Olin Omar
  Orlando Otto Paige Parker Pearl Penelope Percy Quinn Rafael Raven Reid Remy Rhea Rocio Rowan
  Ruby Ryan
`.trim().split(/\s+/);
const LAST_NAMES = `
  Abbott Abernathy Altenwerth Ankunding Armstrong Bahringer Balistreri Barrows Bartell Bashirian
  Bayer Bechtelar Beier Bergnaum Bernhard Blanda Bode Boehm Bogan Boyer Bradtke Braun
  Breitenberg Brekke Brown Buckridge Carroll Cartwright Cassin Champlin Christiansen Collier
  Conn Corkery Cremin Cronin Cummerata Daniel Dare Daugherty Denesik Dickens Dietrich Doyle
  Durgan Ebert Emard Erdman Ernser Feeney Feil Fisher Frami Friesen Funk Gerhold Gibson Gleason
  Goldner Goodwin Gorczany Greenholt Grimes Gulgowski Gutkowski Haag Hackett Hahn Hammes Hand
  Harber Hartmann Hauck Heaney Heathcote Hegmann Heidenreich Hermann Hessel Hilpert Hintz
  Hodkiewicz Homenick Howe Huel Hyatt Jacobi Jaskolski Jenkins Johns Kassulke Keebler Kemmer
  Kiehn Kirlin Klocko Koelpin Konopelski Koss Kovacek Kuhlman Kunde Kuvalis Labadie Langosh
  Larkin Leannon Lebsack Legros Lehner Leuschke Lind Lockman Lowe Lueilwitz Macejkovic Marquardt
  Marvin McClure McCullough McDermott McGlynn McKenzie Medhurst Mertz Metz Mills Mohr Monahan
  Morissette Mraz Muller Murazik Nader Nicolas Nienow Nitzsche Nolan Okuneva Olson Ondricka Orn
  Osinski Pacocha Parisian Pfannerstill Pollich Powlowski Prohaska Quigley Raynor Reichel
  Reinger Renner Ritchie Roob Rosenbaum Runolfsdottir Sanford Schaden Schiller Schmeler
  Schowalter Schroeder Schumm Senger Shanahan Skiles Smitham Spinka Stamm Stehr Stiedemann
  Swaniawski Terry Thiel Toy Tremblay Turcotte Upton VonRueden Walsh Waters Weimann Wiegand
  Wisoky Wuckert Yost Zboncak Ziemann
`.trim().split(/\s+/);
const NAMES = FIRST_NAMES.length * LAST_NAMES.length;
// A prime above both list lengths, hence coprime with NAMES: multiplying by it permutes
// the name pairs, so that neighbouring students get unrelated names.
const NAME_STRIDE = 7919;

// One salt per independent random draw of an event.
const REGRADE = 1;
const REGRADE_OF = 2;
const EXAM_OFFSET = 3;
const EXAM_STRIDE = 4;
const NAME_NUMBER = 5;
const PERFECT = 6;
const SCORE_HIGH = 7;
const SCORE_LOW = 8;

/**
 * The event at `index` (0-based) of the demo feed with this seed: a pure function, so
 * that an index always gives the same event for the same seed and options.
 *
 * Event i belongs to exam `1000 + floor(i / examSize)`; an exam's events go to distinct
 * students of the pool (when examSize <= students), each student's id being unique to
 * it (`Logan_Harber74`). With probability `regradeRate` an event is instead a regrade:
 * it re-sends the (studentId, exam) of an event at most 2,000 events earlier with a new
 * score. Scores are numbers in [0, 1], skewed towards passing, 1 in a thousand perfect.
 */
export function scoreEventAt(
  seed: number,
  index: number,
  options: ScoreEventOptions = {},
): DemoScore {
  const { students, examSize, regradeRate } = resolveEventOptions(options);
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`Cannot generate event ${index}: not a non-negative safe integer`);
  }
  const key = seedKey(seed);
  let original = index;
  while (original > 0 && hash(key, original, REGRADE) / 2 ** 32 < regradeRate) {
    original -= 1 + (hash(key, original, REGRADE_OF) % Math.min(original, REGRADE_WINDOW));
  }
  const block = Math.floor(original / examSize);
  // An affine map with a stride coprime with the pool is a permutation of it: the
  // students of one exam are distinct.
  const offset = hash(key, block, EXAM_OFFSET) % students;
  const stride = coprimeFrom(1 + (hash(key, block, EXAM_STRIDE) % students), students);
  const student = (offset + (original % examSize) * stride) % students;
  return { exam: FIRST_EXAM + block, studentId: studentId(key, student), score: score(key, index) };
}

/**
 * Creates the demo feed: a handler that answers any GET with an SSE stream of
 * `event: score` events carrying {@linkcode scoreEventAt} as JSON data and the decimal
 * index as `id`. A `Last-Event-ID` header resumes after that index; `?rate=` overrides
 * the rate for one connection. After event `total - 1` the body ends, and a request
 * resuming at or past it gets an empty body that ends at once. The stream is pull-based,
 * so a slow client slows the feed down instead of making it buffer, and it stops
 * generating as soon as the client goes away.
 */
export function createDemoFeed(
  {
    seed = 1,
    rate = 5,
    total = Infinity,
    keepAliveMs = 15_000,
    faults = {},
    ...eventOptions
  }: DemoFeedOptions = {},
): (request: Request) => Response {
  resolveEventOptions(eventOptions);
  seedKey(seed);
  if (!(rate >= 0)) throw new RangeError(`Cannot use rate ${rate}: not a number >= 0`);
  if (!(total === Infinity || (Number.isSafeInteger(total) && total >= 0))) {
    throw new RangeError(`Cannot use total ${total}: not an integer >= 0 or Infinity`);
  }
  if (!(keepAliveMs > 0)) {
    throw new RangeError(`Cannot use keepAliveMs ${keepAliveMs}: not a number > 0`);
  }
  const { dropEvery = Infinity } = faults;
  if (!(dropEvery === Infinity || (Number.isSafeInteger(dropEvery) && dropEvery > 0))) {
    throw new RangeError(`Cannot use dropEvery ${dropEvery}: not an integer > 0`);
  }

  return function demoFeed(request: Request): Response {
    if (request.method !== "GET") {
      return new Response(`Cannot ${request.method} the demo feed: only GET`, {
        status: 405,
        headers: { allow: "GET" },
      });
    }
    let connectionRate = rate;
    const rateParam = new URL(request.url).searchParams.get("rate");
    if (rateParam !== null) {
      connectionRate = rateParam.trim() === "" ? NaN : Number(rateParam);
      if (!(connectionRate >= 0)) {
        return new Response(`Cannot use rate "${rateParam}": not a number >= 0`, {
          status: 400,
        });
      }
    }
    let start = 0;
    const lastEventId = request.headers.get("last-event-id");
    if (lastEventId) {
      // The feed's own ids are decimal indexes; anything else was never sent by it.
      if (!/^\d{1,15}$/.test(lastEventId)) {
        return new Response(`Cannot resume after "${lastEventId}": not an id of this feed`, {
          status: 400,
        });
      }
      start = Number(lastEventId) + 1;
    }
    const body = eventStream({
      start,
      total,
      rate: connectionRate,
      keepAliveMs,
      dropEvery,
      eventText: (index) => {
        const { exam, studentId, score } = scoreEventAt(seed, index, eventOptions);
        return `id: ${index}\nevent: score\ndata: {"exam":${exam},"studentId":${
          JSON.stringify(studentId)
        },"score":${score}}\n\n`;
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  };
}

function eventStream({ start, total, rate, keepAliveMs, dropEvery, eventText }: {
  start: number;
  total: number;
  rate: number;
  keepAliveMs: number;
  dropEvery: number;
  eventText: (index: number) => string;
}): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  // Deno.serve cancels the body when the client goes away, which wakes a pending pull.
  const cancelled = new AbortController();
  const paced = rate > 0 && rate < Infinity;
  const begin = performance.now();
  let lastSent = begin;
  let next = start;

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (!cancelled.signal.aborted && next < total) {
        const sent = next - start;
        const now = performance.now();
        // Event k of a connection is due k / rate seconds after it opened; a client that
        // fell behind gets the backlog in full chunks.
        const due = paced ? Math.floor(((now - begin) * rate) / 1000) + 1 - sent : Infinity;
        if (due > 0) {
          const end = next + Math.min(due, total - next, dropEvery - sent);
          let text = "";
          while (next < end && text.length < CHUNK_CHARS) text += eventText(next++);
          lastSent = now;
          if (next - start < dropEvery) {
            controller.enqueue(encoder.encode(text));
            return;
          }
          if (next < total) {
            const cut = eventText(next);
            text += cut.slice(0, cut.length >> 1);
          }
          controller.enqueue(encoder.encode(text));
          break;
        }
        if (now - lastSent >= keepAliveMs) {
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
          lastSent = now;
          return;
        }
        const nextDue = begin + (sent * 1000) / rate;
        // Aborted: the client went away, as the loop's condition sees next.
        await delay(Math.min(nextDue, lastSent + keepAliveMs) - now, undefined, {
          signal: cancelled.signal,
        }).catch(() => {});
      }
      // After cancel() the stream is closed already, and closing it again would throw.
      if (!cancelled.signal.aborted) controller.close();
    },
    cancel() {
      cancelled.abort();
    },
  }, { highWaterMark: 1 });
}

function resolveEventOptions(
  { students = 20_000, examSize = 500, regradeRate = 0.02 }: ScoreEventOptions,
): Required<ScoreEventOptions> {
  // The bounds keep offset + index * stride below 2 ** 53, where arithmetic is exact.
  if (!(Number.isSafeInteger(students) && students >= 1 && students <= 1e9)) {
    throw new RangeError(`Cannot use ${students} students: not an integer in 1..1e9`);
  }
  if (!(Number.isSafeInteger(examSize) && examSize >= 1 && examSize <= 1e6)) {
    throw new RangeError(`Cannot use examSize ${examSize}: not an integer in 1..1e6`);
  }
  if (!(regradeRate >= 0 && regradeRate < 1)) {
    throw new RangeError(`Cannot use regradeRate ${regradeRate}: not a number in [0, 1)`);
  }
  return { students, examSize, regradeRate };
}

function seedKey(seed: number): number {
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`Cannot use seed ${seed}: not a safe integer`);
  }
  return fmix32(seed ^ fmix32(Math.floor(seed / 2 ** 32) | 0));
}

// A uniform 32-bit draw for (seed key, n, salt), n up to 2 ** 53.
function hash(key: number, n: number, salt: number): number {
  const high = Math.floor(n / 2 ** 32);
  return fmix32(key ^ fmix32(n ^ fmix32(high ^ Math.imul(salt, 0x9e3779b9))));
}

// MurmurHash3's finaliser: every input bit flips each output bit with probability 1/2.
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function coprimeFrom(candidate: number, n: number): number {
  while (gcd(candidate, n) !== 1) candidate = (candidate % n) + 1;
  return candidate;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

// Mixed radix over the permuted name pairs, then a number that grows by 100 each time
// the pairs run out: distinct students always get distinct ids, as names contain neither
// "_" nor digits.
function studentId(key: number, student: number): string {
  const pair = ((student % NAMES) * NAME_STRIDE + (key % NAMES)) % NAMES;
  const first = FIRST_NAMES[pair % FIRST_NAMES.length];
  const last = LAST_NAMES[Math.floor(pair / FIRST_NAMES.length)];
  const number = Math.floor(student / NAMES) * 100 + (hash(key, student, NAME_NUMBER) % 100);
  return `${first}_${last}${number}`;
}

function score(key: number, index: number): number {
  if (hash(key, index, PERFECT) % 1000 === 0) return 1;
  // 53 random bits, as Math.random() has: a uniform double in [0, 1).
  const uniform = ((hash(key, index, SCORE_HIGH) >>> 5) * 2 ** 26 +
    (hash(key, index, SCORE_LOW) >>> 6)) / 2 ** 53;
  return Math.sqrt(uniform);
}
