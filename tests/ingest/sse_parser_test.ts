import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_ID_BYTES, type SseEvent, SseParser } from "../../ingest/sse_parser.ts";

const MAX = 1 << 20;

/** A deterministic PRNG (mulberry32), so a failing random split can be reproduced. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomChunks(input: string, random: () => number, maxSize: number): string[] {
  const chunks: string[] = [];
  for (let i = 0; i < input.length;) {
    const size = 1 + Math.floor(random() * maxSize);
    chunks.push(input.slice(i, i + size));
    i += size;
  }
  return chunks;
}

/** The ways every rule is fed: whole, one character at a time, and at random boundaries. */
function splittings(input: string): [string, string[]][] {
  const ways: [string, string[]][] = [["whole", [input]], ["one char at a time", input.split("")]];
  for (let seed = 1; seed <= 20; seed++) {
    ways.push([`random chunks (seed ${seed})`, randomChunks(input, seeded(seed), 1 + seed % 7)]);
  }
  return ways;
}

interface Parsed {
  events: SseEvent[];
  lastEventId: string;
  retry: number | undefined;
}

function parse(chunks: string[], options: { lastEventId?: string; maxEventChars?: number } = {}) {
  const parser = new SseParser({ maxEventChars: MAX, ...options });
  const events = chunks.flatMap((chunk) => parser.push(chunk));
  return { events, lastEventId: parser.lastEventId, retry: parser.retry };
}

/** Asserts that `input`, however it is split, parses to `expected`. */
function assertParses(
  input: string,
  expected: Partial<Parsed> & { events: SseEvent[] },
  options: { lastEventId?: string } = {},
): void {
  for (const [how, chunks] of splittings(input)) {
    const actual = parse(chunks, options);
    assert.deepEqual(actual.events, expected.events, how);
    if ("lastEventId" in expected) assert.equal(actual.lastEventId, expected.lastEventId, how);
    if ("retry" in expected) assert.equal(actual.retry, expected.retry, how);
  }
}

function message(data: string, lastEventId = "", type = "message"): SseEvent {
  return { type, data, lastEventId };
}

Deno.test("SseParser dispatches an event at a blank line after LF-terminated lines", () => {
  assertParses('event: score\ndata: {"exam": 3}\nid: 1\n\n', {
    events: [message('{"exam": 3}', "1", "score")],
    lastEventId: "1",
  });
});

Deno.test("SseParser ends lines at CRLF", () => {
  assertParses("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", {
    events: [message("a\nb"), message("c")],
  });
});

Deno.test("SseParser ends lines at a lone CR", () => {
  assertParses("data: a\rdata: b\r\rdata: c\r\r", { events: [message("a\nb"), message("c")] });
});

Deno.test("SseParser accepts CRLF, LF and CR mixed in one stream", () => {
  assertParses("data: a\r\ndata: b\ndata: c\r\ndata: d\r\n\rdata: e\n\r\n", {
    events: [message("a\nb\nc\nd"), message("e")],
  });
});

Deno.test("SseParser treats a CRLF split across chunks as one line ending", () => {
  // Were the LF after a chunk-final CR taken as a blank line, "a" would be dispatched alone.
  assert.deepEqual(parse(["data: a\r", "\ndata: b\r\n\r\n"]).events, [message("a\nb")]);
  assert.deepEqual(parse(["data: a\r", "", "\ndata: b\r", "\n\r", "\n"]).events, [
    message("a\nb"),
  ]);
  assertParses("data: a\r\ndata: b\r\n\r\n", { events: [message("a\nb")] });
});

Deno.test("SseParser treats a CR at the end of a chunk as a line ending without waiting", () => {
  const parser = new SseParser({ maxEventChars: MAX });
  assert.deepEqual(parser.push("data: a\r\r"), [message("a")]);
  assert.deepEqual(parser.push("\ndata: b\n\n"), [message("b")]);
});

Deno.test("SseParser strips no byte order mark: a BOM is part of the first field name", () => {
  // TextDecoderStream strips the first BOM of a connection; the connection test checks
  // that a second one reaches the parser and spoils the first field.
  assertParses("\uFEFFdata: a\n\ndata: b\n\n", { events: [message("b")] });
  assertParses("\uFEFFid: 1\n\n", { events: [], lastEventId: "" });
});

Deno.test("SseParser ignores comment lines", () => {
  assertParses(": hello\ndata: a\n:data: b\n:\n\n: keep-alive\n\n", {
    events: [message("a")],
  });
});

Deno.test("SseParser removes one leading space from a value, and only one", () => {
  assertParses("data:  two\n\ndata:none\n\ndata:\ttab\n\nevent:  t\ndata: x \n\n", {
    events: [message(" two"), message("none"), message("\ttab"), message("x ", "", " t")],
  });
});

Deno.test("SseParser keeps every colon after the first in the value", () => {
  assertParses("data: a: b:c\n\n", { events: [message("a: b:c")] });
});

Deno.test("SseParser takes a line without a colon as a field with an empty value", () => {
  assertParses("data\n\ndata\ndata\n\nid: 5\nevent: x\nevent\nid\ndata\n\n", {
    events: [message(""), message("\n"), message("", "")],
    lastEventId: "",
  });
});

Deno.test("SseParser treats field names as case-sensitive", () => {
  assertParses("Data: a\n\nDATA: b\nEvent: x\nID: 3\nRetry: 5\ndata: c\n\n", {
    events: [message("c")],
    lastEventId: "",
    retry: undefined,
  });
});

Deno.test("SseParser ignores unknown fields", () => {
  assertParses("foo: bar\ndata: a\ndatum: b\nids: 4\nevents: x\nretries: 1\n\n", {
    events: [message("a")],
    lastEventId: "",
    retry: undefined,
  });
});

Deno.test("SseParser joins data lines with a line feed", () => {
  assertParses("data: a\ndata:\ndata: b\ndata: \n\n", { events: [message("a\n\nb\n")] });
});

Deno.test("SseParser dispatches an empty data field but not a block without data", () => {
  assertParses("data:\n\nevent: x\n\nid: 2\n\ndata: \n\n", {
    events: [message(""), message("", "2")],
  });
});

Deno.test("SseParser defaults the event type to message, also for an empty event field", () => {
  assertParses("data: a\n\nevent:\ndata: b\n\nevent: score\ndata: c\n\n", {
    events: [message("a"), message("b"), message("c", "", "score")],
  });
});

Deno.test("SseParser resets the event type after every blank line, also without dispatch", () => {
  assertParses("event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n", {
    events: [message("1", "", "a"), message("2"), message("3")],
  });
});

Deno.test("SseParser keeps the last event id across events", () => {
  assertParses("id: 1\ndata: a\n\ndata: b\n\nevent: x\n\ndata: c\n\n", {
    events: [message("a", "1"), message("b", "1"), message("c", "1")],
    lastEventId: "1",
  });
});

Deno.test("SseParser keeps ids opaque", () => {
  assertParses("id:  007 \ndata: a\n\nid: é😀x\ndata: b\n\n", {
    events: [message("a", " 007 "), message("b", "é😀x")],
    lastEventId: "é😀x",
  });
});

Deno.test("SseParser starts from the last event id it is given", () => {
  assertParses("data: a\n\nid: 42\n\n", { events: [message("a", "41")], lastEventId: "42" }, {
    lastEventId: "41",
  });
  assertParses("data: a\n", { events: [], lastEventId: "41" }, { lastEventId: "41" });
});

Deno.test("SseParser ignores an id that contains NUL", () => {
  assertParses("id: 1\ndata: a\n\nid: 2\0\ndata: b\n\nid: \0\n\n", {
    events: [message("a", "1"), message("b", "1")],
    lastEventId: "1",
  });
});

Deno.test("SseParser resets the last event id on an empty id", () => {
  assertParses("id: 1\ndata: a\n\nid:\ndata: b\n\nid: 2\n\nid\n\n", {
    events: [message("a", "1"), message("b", "")],
    lastEventId: "",
  });
  assertParses("id: \n\n", { events: [], lastEventId: "" }, { lastEventId: "9" });
});

Deno.test("SseParser takes the id of a block with no data as the last event id", () => {
  assertParses("id: 7\n\n", { events: [], lastEventId: "7" });
  assertParses("data: a\nid: 1\n\nid: 7\nevent: x\n\ndata: b\n\n", {
    events: [message("a", "1"), message("b", "7")],
    lastEventId: "7",
  });
});

Deno.test("SseParser takes the last id of a block", () => {
  assertParses("id: 1\ndata: a\nid: 2\n\n", { events: [message("a", "2")], lastEventId: "2" });
});

Deno.test("SseParser never dispatches an event cut off by the end of the stream", () => {
  assertParses("id: 1\ndata: a\n\nid: 2\ndata: b\n", {
    events: [message("a", "1")],
    lastEventId: "1",
  });
  assertParses("id: 1\ndata: a\n\ndata: b", { events: [message("a", "1")], lastEventId: "1" });
  assertParses("id: 1\ndata: a\n\nid: 2", { events: [message("a", "1")], lastEventId: "1" });
});

Deno.test("SseParser changes lastEventId only when a block completes", () => {
  const parser = new SseParser({ maxEventChars: MAX, lastEventId: "0" });
  assert.deepEqual(parser.push("id: 1\ndata: a\n"), []);
  assert.equal(parser.lastEventId, "0");
  assert.deepEqual(parser.push("\nid: 2\n"), [message("a", "1")]);
  assert.equal(parser.lastEventId, "1");
  assert.deepEqual(parser.push("\r\n"), []);
  assert.equal(parser.lastEventId, "2");
});

Deno.test("SseParser honours retry only when it is all ASCII digits", () => {
  assertParses("retry: 1500\n", { events: [], retry: 1500 });
  assertParses("retry: 0\n\n", { events: [], retry: 0 });
  for (const bad of ["15s", "-1", "1.5", "", " 15", "15 ", "+15", "1e3", "١٢", "0x10"]) {
    assertParses(`retry: 200\n\nretry: ${bad}\n\n`, { events: [], retry: 200 });
  }
  assertParses("retry\ndata: a\n\n", { events: [message("a")], retry: undefined });
});

Deno.test("SseParser takes retry when its line is read, as WHATWG does", () => {
  assertParses("retry: 300\ndata: a\n", { events: [], retry: 300 });
});

Deno.test("SseParser returns the events of one chunk in order", () => {
  const parser = new SseParser({ maxEventChars: MAX });
  const input = Array.from({ length: 100 }, (_, i) => `id: ${i}\ndata: ${i}\n\n`).join("");
  const events = parser.push(input);
  assert.deepEqual(events.map((e) => e.data), Array.from({ length: 100 }, (_, i) => `${i}`));
  assert.equal(parser.lastEventId, "99");
});

Deno.test("SseParser accepts an event of exactly maxEventChars", () => {
  // Lines count without their terminators: "data: " + 94 = 100.
  const input = `data: ${"x".repeat(94)}\n\n`.repeat(3);
  for (const [how, chunks] of splittings(input)) {
    const { events } = parse(chunks, { maxEventChars: 100 });
    assert.equal(events.length, 3, how);
  }
});

Deno.test("SseParser skips an event whose lines exceed maxEventChars, keeping its size and id", () => {
  const inputs: [string, number, string][] = [
    [`data: ${"x".repeat(95)}\n\n`, 101, ""],
    [
      `data: ${"x".repeat(40)}\ndata: ${"x".repeat(40)}\nid: ${"1".repeat(20)}\n\n`,
      116,
      "1".repeat(20),
    ],
    [`event: ${"x".repeat(200)}\n\n`, 207, ""],
    [`${"x".repeat(101)}\n\n`, 101, ""],
  ];
  for (const [input, size, id] of inputs) {
    for (const [how, chunks] of splittings(input + "data: next\n\n")) {
      const { events, lastEventId } = parse(chunks, { maxEventChars: 100 });
      assert.deepEqual(events.map((e) => e.tooLarge), [size, undefined], how);
      assert.equal(events[1].data, "next", how);
      assert.equal(lastEventId, id, how);
    }
  }
});

Deno.test("SseParser does not count comment lines toward the limit", () => {
  const input = `: ${"c".repeat(90)}\n`.repeat(10) + `data: ${"x".repeat(90)}\n\n`;
  assertParses(input, { events: [message("x".repeat(90))] });
});

Deno.test("SseParser drops a never-ending line as it arrives, and dispatches its size at the end", () => {
  const parser = new SseParser({ maxEventChars: 1000 });
  const chunk = "x".repeat(64);
  parser.push("id: 7\nevent: score\ndata: ");
  for (let i = 0; i < 100_000; i++) assert.deepEqual(parser.push(chunk), []);
  const [event] = parser.push("\nid: 8\n\n");
  assert.equal(event.tooLarge, 5 + 12 + 6 + 6_400_000 + 5);
  assert.equal(event.type, "score");
  assert.equal(event.data, "x".repeat(1024));
  assert.equal(event.lastEventId, "8");
});

Deno.test("SseParser drops data lines that never end in a blank line", () => {
  const parser = new SseParser({ maxEventChars: 1000 });
  for (let i = 0; i < 100_000; i++) assert.deepEqual(parser.push("data: 0123456789\n"), []);
  const [event] = parser.push("\n");
  assert.equal(event.tooLarge, 1_600_000);
  assert.ok(event.data.startsWith("0123456789\n0123456789\n") && event.data.length <= 1024);
});

Deno.test("SseParser goes on past an oversized event, in order", () => {
  const parser = new SseParser({ maxEventChars: 100 });
  const events = parser.push(
    `id: 2\ndata: b\n\nid: 3\ndata: ${"x".repeat(200)}\n\nid: 4\ndata: c\n\n`,
  );
  assert.deepEqual(events.map((e) => [e.lastEventId, e.tooLarge ?? null]), [
    ["2", null],
    ["3", 211],
    ["4", null],
  ]);
});

Deno.test("SseParser adopts no id longer than MAX_ID_BYTES UTF-8 bytes, and marks its event", () => {
  const fits = "é".repeat(MAX_ID_BYTES / 2);
  const long = "é".repeat(MAX_ID_BYTES / 2 + 1);
  for (const id of [fits, long, "x".repeat(100_000)]) {
    const parser = new SseParser({ maxEventChars: 1 << 20, lastEventId: "1" });
    const [event] = parser.push(`id: ${id}\ndata: a\n\n`);
    const adopted = id === fits;
    assert.equal(parser.lastEventId, adopted ? id : "1");
    assert.equal(event.lastEventId, adopted ? id : "1");
    assert.equal(event.longId, adopted ? undefined : id.slice(0, 1024));
  }
});

// A literal transcription of the WHATWG algorithm, fed the whole input, as an oracle
// for the chunked fast path.
function reference(input: string, lastEventId = ""): Parsed {
  const lines = input.split(/\r\n|\r|\n/);
  lines.pop(); // the incomplete last line, "" when the input ends with a line break
  const events: SseEvent[] = [];
  let data = "", type = "", id = lastEventId, retry: number | undefined;
  for (const line of lines) {
    if (line === "") {
      lastEventId = id;
      if (data !== "") {
        events.push({ type: type || "message", data: data.slice(0, -1), lastEventId });
      }
      data = type = "";
      continue;
    }
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") type = value;
    else if (name === "data") data += value + "\n";
    else if (name === "id" && !value.includes("\0")) id = value;
    else if (name === "retry" && /^[0-9]+$/.test(value)) retry = Number(value);
  }
  return { events, lastEventId, retry };
}

Deno.test("SseParser agrees with a literal WHATWG transcription on any input and split", () => {
  const token = fc.constantFrom(
    "data",
    "id",
    "event",
    "retry",
    "Data",
    ":",
    " ",
    "\r",
    "\n",
    "\r\n",
    "\n\n",
    "x",
    "7",
    "\0",
    "\uFEFF",
    "é",
  );
  fc.assert(
    fc.property(fc.array(token, { maxLength: 80 }), fc.integer(), (tokens, seed) => {
      const input = tokens.join("");
      const expected = reference(input, "start");
      for (const chunks of [[input], input.split(""), randomChunks(input, seeded(seed), 9)]) {
        assert.deepEqual(parse(chunks, { lastEventId: "start" }), expected);
      }
    }),
    { numRuns: 2000 },
  );
});
